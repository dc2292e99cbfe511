package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/meridian-lb/meridian/config"
)

// Environment variables NewClient honours, with Consul's own meanings.
const (
	EnvAddr      = "CONSUL_HTTP_ADDR"
	EnvToken     = "CONSUL_HTTP_TOKEN"
	EnvTokenFile = "CONSUL_HTTP_TOKEN_FILE"
)

// redacted replaces the ACL token wherever a response body echoes it.
const redacted = "[redacted]"

// maxErrorBody bounds how much of an error response is kept (and logged).
const maxErrorBody = 4 << 10

// NewClient builds the Consul API client from the consul: block.
//
// The ACL token comes from cfg.TokenFile, else from CONSUL_HTTP_TOKEN_FILE,
// else from CONSUL_HTTP_TOKEN; consul/api sends it only in the
// X-Consul-Token header (never ?token=, which ends up in access logs), and
// the transport scrubs it from error bodies so it cannot reach a log line
// even when a proxy or server echoes it. An "https://" address (or a CA or
// client certificate without a scheme) selects TLS, verified against
// cfg.CAFile when set, with cfg.CertFile/KeyFile as the client certificate.
// Namespace and Partition are sent with every request. TLS settings come only
// from cfg; CONSUL_CACERT and friends are not read.
func NewClient(cfg *config.Consul) (*api.Client, error) {
	if cfg == nil {
		return nil, errors.New("consul: no consul configuration")
	}
	token, err := resolveToken(cfg.TokenFile)
	if err != nil {
		return nil, err
	}
	addr := strings.TrimSpace(cfg.Address)
	if addr == "" {
		addr = os.Getenv(EnvAddr)
	}
	if addr == "" {
		addr = "127.0.0.1:8500"
	}
	scheme, hostport := "http", addr
	if i := strings.Index(addr, "://"); i >= 0 {
		scheme, hostport = addr[:i], addr[i+3:]
	}
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("consul: address %q: unsupported scheme %q (use http:// or https://)", addr, scheme)
	}
	hostport, _, _ = strings.Cut(hostport, "/")
	if hostport == "" {
		return nil, fmt.Errorf("consul: address %q: missing host", addr)
	}
	if scheme == "http" && !strings.Contains(addr, "://") && (cfg.CAFile != "" || cfg.CertFile != "") {
		scheme = "https"
		addr = "https://" + addr
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("consul: cert_file and key_file must be set together")
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Every watched selection holds one connection in a blocking query.
	transport.MaxIdleConnsPerHost = 64
	transport.IdleConnTimeout = 90 * time.Second
	if scheme == "https" {
		host := hostport
		if h, _, err := net.SplitHostPort(hostport); err == nil {
			host = h
		}
		tc, err := api.SetupTLSConfig(&api.TLSConfig{
			Address:  host,
			CAFile:   cfg.CAFile,
			CertFile: cfg.CertFile,
			KeyFile:  cfg.KeyFile,
		})
		if err != nil {
			return nil, fmt.Errorf("consul: tls: %w", err)
		}
		transport.TLSClientConfig = tc
	}
	c := &api.Config{
		Address:    addr,
		Scheme:     scheme,
		Datacenter: cfg.Datacenter,
		Namespace:  cfg.Namespace,
		Partition:  cfg.Partition,
		Token:      token,
		// Set so consul/api re-reads the same file instead of preferring
		// CONSUL_HTTP_TOKEN_FILE from the environment.
		TokenFile:  cfg.TokenFile,
		Transport:  transport,
		HttpClient: &http.Client{Transport: &redactTransport{base: transport, secret: token}},
	}
	client, err := api.NewClient(c)
	if err != nil {
		return nil, fmt.Errorf("consul: %s", redact(err.Error(), token))
	}
	return client, nil
}

// resolveToken returns the ACL token with consul/api's precedence: the
// configured file, CONSUL_HTTP_TOKEN_FILE, then CONSUL_HTTP_TOKEN.
func resolveToken(file string) (string, error) {
	if file == "" {
		file = os.Getenv(EnvTokenFile)
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			// The path is not secret; the error never contains file content.
			return "", fmt.Errorf("consul: token file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("consul: token file %q is empty", file)
		}
		return t, nil
	}
	return strings.TrimSpace(os.Getenv(EnvToken)), nil
}

// redactTransport removes the ACL token from non-2xx response bodies, which
// consul/api copies into its errors. Success bodies are left alone: they are
// parsed, never logged.
type redactTransport struct {
	base   http.RoundTripper
	secret string
}

func (t *redactTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil || t.secret == "" || resp.StatusCode < 300 {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	if rerr != nil {
		body = append(body, " (body truncated: "...)
		body = append(body, rerr.Error()...)
		body = append(body, ')')
	}
	body = bytes.ReplaceAll(body, []byte(t.secret), []byte(redacted))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, redacted)
}

// describeError renders a Consul error for a log line: the status and a
// bounded body for HTTP errors, the transport error otherwise.
func describeError(err error) string {
	var se api.StatusError
	if errors.As(err, &se) {
		body := se.Body
		if len(body) > 200 {
			body = body[:200] + "..."
		}
		switch se.Code {
		case http.StatusForbidden:
			return fmt.Sprintf("permission denied (HTTP 403: %s); check the ACL token's policy", body)
		default:
			return fmt.Sprintf("HTTP %d: %s", se.Code, body)
		}
	}
	return err.Error()
}
