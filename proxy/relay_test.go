package proxy

import (
	"errors"
	"github.com/meridian-lb/meridian/policy"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// parseRawHeader reads "Name: value" lines into a header, as a server
// would (canonical names); lines without a colon are skipped.
func parseRawHeader(raw string) http.Header {
	h := http.Header{}
	for line := range strings.SplitSeq(raw, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			continue
		}
		k = textproto.CanonicalMIMEHeaderKey(k)
		h[k] = append(h[k], textproto.TrimString(v))
	}
	return h
}

// FuzzOutboundHeader checks relay's outbound header and query against
// httputil.ReverseProxy's, given the same Rewrite (forwardHeaders): the
// header relay builds in one pass must be the one ReverseProxy built with
// its clone and deletes, for any inbound header (upgrades aside, which
// ReverseProxy still serves) and any route header edits.
func FuzzOutboundHeader(f *testing.F) {
	f.Add("Connection: keep-alive, X-Foo\nX-Foo: 1\nTe: trailers, deflate\nX-Forwarded-For: 1.2.3.4\nKeep-Alive: 5\nAccept: */*", "a=1;b=2", true)
	f.Add("X-Real-Ip: 9.9.9.9\nX-Forwarded-Proto: https\nX-Forwarded-Port: 443\nForwarded: for=x\nX-Meridian-Mirror: 1\nHttp2-Settings: AAA", "%zz&c=3", false)
	f.Add("Connection: X-Request-Id, user-agent\nUser-Agent: curl\nX-Drop: 1\nProxy-Authorization: basic x\nTrailer: X", "q=%41", true)
	f.Add("Transfer-Encoding: chunked\nTE: TRAILERS\nconnection: \t, ,x-a\nX-A: 1\nX-Added: old", "", false)
	f.Fuzz(func(t *testing.T, rawHeader, rawQuery string, trusted bool) {
		hdr := parseRawHeader(rawHeader)
		if _, ok := hdr["Upgrade"]; ok {
			return // ReverseProxy's path, not relay's
		}
		in := &http.Request{
			Method: "GET", URL: &url.URL{Path: "/p", RawQuery: rawQuery}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: hdr, Host: "example.test", RemoteAddr: "10.0.0.1:5000",
		}
		x := &exchange{peerHost: "10.0.0.1", trusted: trusted, requestID: "rid", rs: &routeState{
			addHeaders:    []policy.HeaderValue{{Name: "X-Added", Literal: "v"}},
			removeHeaders: []string{"X-Drop", "User-Agent"},
		}}
		if trusted {
			x.rs.removeHeaders = x.rs.removeHeaders[:1]
		}

		var want http.Header
		var wantQuery string
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) { forwardHeaders(pr.Out.Header, pr.In, x) },
			Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				want, wantQuery = r.Header.Clone(), r.URL.RawQuery
				return nil, errors.New("captured")
			}),
			ErrorHandler: func(http.ResponseWriter, *http.Request, error) {},
		}
		rp.ServeHTTP(httptest.NewRecorder(), in)

		got := outboundHeader(in, x, &relay{})
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("inbound %v (trusted %t)\nrelay:        %v\nReverseProxy: %v", hdr, trusted, got, want)
		}
		if q := cleanQueryParams(rawQuery); q != wantQuery {
			t.Fatalf("query %q: relay %q, ReverseProxy %q", rawQuery, q, wantQuery)
		}
	})
}

// FuzzFlushImmediately checks relay's choice to flush every write against
// ReverseProxy's rule (mime.ParseMediaType, then unknown length).
func FuzzFlushImmediately(f *testing.F) {
	f.Add("text/event-stream", int64(10))
	f.Add("TEXT/Event-Stream; charset=utf-8", int64(10))
	f.Add("text/event-stream;", int64(10))
	f.Add("text/html", int64(-1))
	f.Add("application/x-event-stream", int64(3))
	f.Fuzz(func(t *testing.T, ct string, length int64) {
		res := &http.Response{Header: http.Header{"Content-Type": {ct}}, ContentLength: length}
		base, _, _ := mime.ParseMediaType(ct)
		want := base == "text/event-stream" || length == -1
		if got := flushImmediately(res); got != want {
			t.Fatalf("Content-Type %q, length %d: flush %t, ReverseProxy %t", ct, length, got, want)
		}
	})
}

func TestRelayRefusesSwitchWithoutUpgrade(t *testing.T) {
	up := newRawUpstream(t, func(_ int64, req *http.Request, w io.Writer) bool {
		w.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
		return false
	})
	e := newEnv(t, oneRoute, map[string]string{"A": up.addr()})
	res, err := http.Get(e.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502: the client asked for no upgrade", res.StatusCode)
	}
	// The upstream's fault, counted once.
	if got := e.metric("meridian_http_upstream_errors_total", map[string]string{"kind": kindBadResponse}); got != 1 {
		t.Errorf("bad_response upstream errors = %v, want 1", got)
	}
}
