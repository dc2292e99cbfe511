package health

import (
	"testing"

	"github.com/meridian-lb/meridian/config"
)

// TestCheckConfig: a dns check's qtype and rcode are checked where the
// probe parses them, by config path; other checks have nothing to check.
func TestCheckConfig(t *testing.T) {
	cfg := &config.Config{Checks: map[string]*config.Check{
		"good": {Type: config.CheckDNS, QName: "example.com.", QType: "aaaa", RCode: "nxdomain"},
		"bad":  {Type: config.CheckDNS, QName: "example.com.", QType: "AAAAA", RCode: "OK"},
		"http": {Type: config.CheckHTTP, QType: "nonsense"},
		"nil":  nil,
	}}
	err := CheckConfig(cfg)
	want := "checks.bad.qtype: unknown qtype \"AAAAA\"\nchecks.bad.rcode: unknown rcode \"OK\""
	if err == nil || err.Error() != want {
		t.Errorf("CheckConfig = %v, want\n%s", err, want)
	}
	delete(cfg.Checks, "bad")
	if err := CheckConfig(cfg); err != nil {
		t.Errorf("CheckConfig on good checks = %v", err)
	}
}
