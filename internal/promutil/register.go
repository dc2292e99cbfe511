package promutil

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Register registers c on reg and returns it; when a collector with the same
// description is already registered it returns that one instead, so two
// components on one registry share the series rather than fail. A nil reg
// registers nothing. Any other registration error is returned with c.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// Logged is Register for constructors that cannot fail: a registration
// error is logged and c is returned, still counting, just not exported.
func Logged[C prometheus.Collector](reg prometheus.Registerer, c C, log *zap.Logger) C {
	c, err := Register(reg, c)
	if err != nil {
		log.Error("registering metric", zap.Error(err))
	}
	return c
}
