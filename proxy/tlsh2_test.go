package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meridian-lb/meridian/internal/certtest"
)

// TestTLSRapidReset floods one connection with streams it resets at once
// (CVE-2023-44487) against an upstream that never answers, while another
// client's requests keep succeeding. The flood may not run more handlers
// at once than the advertised stream limit.
func TestTLSRapidReset(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	writePair(t, ca, dir, "a", "a.example.com")

	var cur, peak atomic.Int64
	be := newBackend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			n := cur.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-r.Context().Done()
			cur.Add(-1)
			return
		}
		io.WriteString(w, "ok")
	})
	e := newTLSEnv(t, rotateConfig, map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr}, roots)

	conn, err := tls.Dial("tcp", e.addr, &tls.Config{ServerName: "a.example.com", RootCAs: roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"}, {Name: ":authority", Value: "a.example.com"}, {Name: ":path", Value: "/hang"}} {
		_ = enc.WriteField(f)
	}
	block := hb.Bytes()

	// Drain the server's frames so its writes never block, noting GOAWAY.
	var goaway atomic.Value
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				goaway.Store(ga.ErrCode.String())
			}
		}
	}()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	wg.Go(func() {
		for id := uint32(1); id < 1<<20; id += 2 {
			select {
			case <-stop:
				return
			default:
			}
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
				return
			}
			if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
				return
			}
			sent.Add(1)
		}
	})

	// Meanwhile another client is served.
	c := e.client(nil)
	for i := range 20 {
		res, body := e.get(c, "https://a.example.com/ok", "")
		if res.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d during the flood: %d %q", i, res.StatusCode, body)
		}
	}
	waitFor(t, "the flood to send streams", func() bool { return sent.Load() >= 5000 || isClosed(readDone) })
	close(stop)
	wg.Wait()
	conn.Close()
	<-readDone

	if p := peak.Load(); p > h2MaxStreams {
		t.Errorf("%d upstream requests at once from one connection, want <= %d", p, h2MaxStreams)
	}
	waitFor(t, "the reset streams' upstream requests to end", func() bool { return cur.Load() == 0 })
	t.Logf("streams sent %d, peak upstream concurrency %d, GOAWAY %v, too_many_early_resets %v",
		sent.Load(), peak.Load(), goaway.Load(), e.metric("meridian_http2_errors_total", map[string]string{"type": "too_many_early_resets"}))
	res, body := e.get(e.client(nil), "https://a.example.com/ok", "")
	if res.StatusCode != 200 || body != "ok" {
		t.Fatalf("after the flood: %d %q", res.StatusCode, body)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestTLSHTTP2Limits checks the settings the TLS listener advertises.
func TestTLSHTTP2Limits(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dir := t.TempDir()
	writePair(t, ca, dir, "a", "a.example.com")
	be := newBackend(t, "be", nil)
	e := newTLSEnv(t, rotateConfig, map[string]string{"A": filepath.Join(dir, "a"), "BACKEND": be.addr}, roots)
	conn, err := tls.Dial("tcp", e.addr, &tls.Config{ServerName: "a.example.com", RootCAs: roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings()
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %T, want SETTINGS", f)
	}
	want := map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: h2MaxStreams,
		http2.SettingHeaderTableSize:      h2HeaderTableSize,
	}
	if got, _ := sf.Value(http2.SettingMaxHeaderListSize); got < 64<<10 || got > 64<<10+4096 {
		t.Errorf("MAX_HEADER_LIST_SIZE = %d, want max_header_bytes (64 KiB) plus Go's small slack", got)
	}
	for id, v := range want {
		got, ok := sf.Value(id)
		if !ok && id == http2.SettingHeaderTableSize && v == 4096 {
			continue // the protocol default need not be sent
		}
		if got != v {
			t.Errorf("%v = %d (sent %v), want %d", id, got, ok, v)
		}
	}
}
