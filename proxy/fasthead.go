package proxy

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The fast lane's request head parser (fast.go). It takes a strict subset
// of what net/http accepts, and answers no for anything else, which then
// goes to net/http on the same connection, so every refusal, quirk and
// error page stays net/http's: FuzzFastHead holds the two to the same
// request wherever this parser says yes.
//
// Taken: "METHOD /origin-form HTTP/1.1" and header lines ending in CRLF,
// each "Name: value" with a token name and a value of visible characters,
// spaces and tabs; exactly one valid Host; at most one Content-Length of
// digits. Not taken (net/http's): HTTP/1.0 and other versions, absolute
// and asterisk forms, CONNECT and PRI, bare LF or CR, folded or
// space-prefixed lines, a space before the colon, Transfer-Encoding,
// Expect, Upgrade, a repeated or malformed Content-Length, a missing,
// repeated or malformed Host, and any target url.ParseRequestURI refuses.

// fastHead is a parsed request head.
type fastHead struct {
	method, target string
	url            *url.URL
	host           string
	contentLength  int64
	close          bool // Connection: close
}

// parseFastHead parses the complete head b (request line, header lines and
// the blank line) into h, filling hdr (cleared first). It reports false
// for anything outside the subset above. The strings it stores are
// substrings of one copy of b, and the value slices share one array, both
// new for each request: the handler may hand them to goroutines that
// outlive it.
func parseFastHead(b []byte, h *fastHead, hdr http.Header) bool {
	clear(hdr)
	// One string for the whole head: every method, target, key and value
	// below is a substring of it.
	s := string(b)
	eol := strings.Index(s, "\r\n")
	if eol < 0 {
		return false
	}
	line := s[:eol]
	s = s[eol+2:]
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return false
	}
	h.method = line[:sp]
	rest := line[sp+1:]
	sp = strings.IndexByte(rest, ' ')
	if sp <= 0 || rest[sp+1:] != "HTTP/1.1" {
		return false
	}
	h.target = rest[:sp]
	if h.target[0] != '/' || !httpguts.ValidHeaderFieldName(h.method) || h.method == "CONNECT" || h.method == "PRI" {
		return false
	}
	u, err := url.ParseRequestURI(h.target)
	if err != nil {
		return false
	}
	h.url = u

	// Header lines. Values go in one backing array, one slice per key.
	vs := make([]string, 0, strings.Count(s, "\r\n")) // lines, the blank one included
	h.contentLength, h.close = 0, false
	hosts := 0
	for {
		eol = strings.Index(s, "\r\n")
		if eol < 0 {
			return false
		}
		line, s = s[:eol], s[eol+2:]
		if line == "" {
			break
		}
		if strings.IndexByte(line, '\n') >= 0 || line[0] == ' ' || line[0] == '\t' {
			return false
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return false
		}
		name, value := line[:colon], strings.Trim(line[colon+1:], " \t")
		key, ok := canonicalKey(name)
		if !ok || !validValue(value) {
			return false
		}
		switch key {
		case "Transfer-Encoding", "Expect", "Upgrade":
			return false
		case "Host":
			hosts++
			if hosts > 1 || !httpguts.ValidHostHeader(value) {
				return false
			}
			h.host = value
			continue // net/http keeps Host out of Request.Header
		case "Content-Length":
			if _, seen := hdr[key]; seen {
				return false
			}
			cl, ok := parseDigits(value)
			if !ok {
				return false
			}
			h.contentLength = cl
		}
		if old, ok := hdr[key]; ok {
			hdr[key] = append(old, value)
			continue
		}
		vs = append(vs, value)
		hdr[key] = vs[len(vs)-1 : len(vs) : len(vs)]
	}
	if hosts != 1 || s != "" {
		return false
	}
	if hp, ok := hdr["Pragma"]; ok && hp[0] == "no-cache" {
		if _, cc := hdr["Cache-Control"]; !cc {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}
	h.close = httpguts.HeaderValuesContainsToken(hdr["Connection"], "close")
	return true
}

// validValue reports whether every byte of a header value is one net/http
// accepts: visible characters, obs-text, spaces and tabs.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseDigits parses a Content-Length of 1 to 18 ASCII digits.
func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// canonicalKey returns the canonical form of a header name of token
// characters, without allocating when the name is already canonical or is
// a common header; ok is false for anything but a token.
func canonicalKey(name string) (string, bool) {
	upper, canon := true, true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !httpguts.IsTokenRune(rune(c)) {
			return "", false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canon = false
		}
		upper = c == '-'
	}
	if canon {
		return name, true
	}
	var buf [64]byte
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(name), true
	}
	b := buf[:len(name)]
	upper = true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k, ok := commonKeys[string(b)]; ok {
		return k, true
	}
	return string(b), true
}

// commonKeys interns the header names clients send most, so a lower-case
// name (HTTP/2 habits, some libraries) costs no allocation.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language",
		"Authorization", "Cache-Control", "Connection", "Content-Length", "Content-Type", "Cookie",
		"Host", "If-Modified-Since", "If-None-Match", "Origin", "Pragma", "Referer", "Te",
		"Traceparent", "Tracestate", "Transfer-Encoding", "Upgrade", "Expect", "User-Agent",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile",
		"Sec-Ch-Ua-Platform", "Upgrade-Insecure-Requests", "Dnt", "Priority", "Range", "If-Range"} {
		m[k] = k
	}
	return m
}()

// headEnd finds the end of a CRLF-terminated request head in b: the index
// just past "\r\n\r\n", or -1.
func crlfHeadEnd(b []byte) int {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return -1
	}
	return i + 4
}
