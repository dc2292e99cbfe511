package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/meridian-lb/meridian/config"
)

// LiveConfig is the config a running instance serves, as its config
// history has it.
type LiveConfig struct {
	Version string // the table version it compiled to when accepted
	Source  string // the instance's config file or consul://KEY
	Raw     []byte
}

// FetchConfig asks the admin API at admin (a base URL; a bare host:port
// means http://) for the config it serves: the newest entry of GET
// /api/v1/config/history, then its bytes. token is the bearer token, ""
// for an API without one.
func FetchConfig(ctx context.Context, hc *http.Client, admin, token string) (LiveConfig, error) {
	base, err := adminBase(admin)
	if err != nil {
		return LiveConfig{}, err
	}
	body, err := adminGet(ctx, hc, admin, base+"/api/v1/config/history", token, 1<<20)
	if err != nil {
		return LiveConfig{}, err
	}
	var doc historyDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return LiveConfig{}, fmt.Errorf("admin API %s: reading the config history: %w", admin, err)
	}
	if len(doc.Entries) == 0 {
		return LiveConfig{}, fmt.Errorf("admin API %s: the config history is empty", admin)
	}
	e := doc.Entries[0]
	raw, err := adminGet(ctx, hc, admin, base+"/api/v1/config/history/"+url.PathEscape(e.Version), token, config.MaxFileBytes+1)
	if err != nil {
		return LiveConfig{}, err
	}
	return LiveConfig{Version: e.Version, Source: e.Source, Raw: raw}, nil
}

// adminBase is the admin API's base URL, without a trailing slash.
func adminBase(admin string) (string, error) {
	base := admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("admin URL %q: want http://HOST:PORT", admin)
	}
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/"), nil
}

// adminGet GETs u with the token and returns the body, up to limit bytes;
// an answer other than 200 is an error that says what to do.
func adminGet(ctx context.Context, hc *http.Client, admin, u, token string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("admin API %s: %w", admin, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("admin API %s: reading the answer: %w", admin, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("admin API %s: unauthorized: pass the admin token with -token-file", admin)
	case http.StatusNotFound:
		if strings.HasSuffix(u, "/api/v1/config/history") {
			return nil, fmt.Errorf("admin API %s: no /api/v1/config/history here (is this a Meridian admin address, of a version with config history?)", admin)
		}
	}
	return nil, fmt.Errorf("admin API %s: %s: %s", admin, resp.Status, strings.TrimSpace(string(body)))
}
