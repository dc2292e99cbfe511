package dns

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/meridian-lb/meridian/health"
	"github.com/meridian-lb/meridian/routing"
)

func TestExplain(t *testing.T) {
	cfg := loadConfig(t, "zone.yaml")
	tab := compile(t, cfg)
	eng := health.New(health.Options{})
	eng.Sync(tab.HealthSpecs())
	tab.BindHealth(eng)
	if err := eng.Override("web-us", "198.51.100.10:80", health.ActionDown); err != nil {
		t.Fatal(err)
	}

	ex := Explain(tab, "www.example.com", mdns.TypeA, netip.MustParseAddr("127.0.0.1"), netip.MustParsePrefix("198.51.100.0/24"))
	if ex.Rcode != "NOERROR" || !ex.Authoritative || ex.Zone != "example.com." {
		t.Fatalf("rcode %s aa %t zone %q", ex.Rcode, ex.Authoritative, ex.Zone)
	}
	if l := ex.Location; l == nil || l.From != "ecs" || l.Region != "us" || l.Source != "nets" || l.Prefix != 24 {
		t.Fatalf("location %+v, want us from ECS via nets /24", l)
	}
	if ex.Scope == nil || *ex.Scope != 24 {
		t.Fatalf("scope %v, want 24", ex.Scope)
	}
	if len(ex.Answer) != 1 || ex.Answer[0] != "www.example.com. 30 IN A 198.51.100.11" {
		t.Fatalf("answer %v", ex.Answer)
	}
	if len(ex.Steered) != 1 {
		t.Fatalf("steered %v", ex.Steered)
	}
	st := ex.Steered[0]
	if st.Service != "web" || st.Policy != "geo" || st.Region != "us" || len(st.Pools) != 2 {
		t.Fatalf("steered %+v", st)
	}
	us, eu := st.Pools[0], st.Pools[1]
	if us.Name != "web-us" || !us.Used || len(us.Unavailable) != 1 || us.Unavailable[0] != "198.51.100.10:80" ||
		len(us.Available) != 1 || eu.Name != "web-eu" || eu.Used || len(eu.Available) != 2 {
		t.Fatalf("pools %+v", st.Pools)
	}

	t.Run("out of zone", func(t *testing.T) {
		ex := Explain(tab, "example.org.", mdns.TypeA, netip.Addr{}, netip.Prefix{})
		if ex.Rcode != "REFUSED" || ex.Zone != "" || len(ex.Notes) == 0 {
			t.Fatalf("%+v", ex)
		}
	})
	t.Run("static has no location", func(t *testing.T) {
		ex := Explain(tab, "ns1.example.com.", mdns.TypeA, netip.MustParseAddr("127.0.0.2"), netip.Prefix{})
		if ex.Location != nil || ex.Scope != nil || len(ex.Answer) != 1 {
			t.Fatalf("%+v", ex)
		}
	})
}

func TestExplainHandler(t *testing.T) {
	live := &routing.Live{}
	hnd := ExplainHandler(live)
	get := func(query string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		hnd.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/explain?"+query, nil))
		return rec
	}
	if rec := get("qname=www.example.com"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("no table: %d", rec.Code)
	}
	live.Store(compile(t, loadConfig(t, "zone.yaml")))
	for _, tt := range []struct {
		name, query string
		code        int
		region      string
	}{
		{"client decides", "qname=www.example.com&qtype=A&client=127.0.0.2", 200, "us"},
		{"ecs decides", "qname=www.example.com&client=127.0.0.2&ecs=10.0.0.0/8", 200, "eu"},
		{"ecs as an address", "qname=www.example.com&client=127.0.0.1&ecs=198.51.100.9", 200, "us"},
		{"bad qtype", "qname=www.example.com&qtype=BOGUS", 400, ""},
		{"bad client", "qname=www.example.com&client=nope", 400, ""},
		{"bad ecs", "qname=www.example.com&ecs=nope", 400, ""},
		{"missing qname", "qtype=A", 400, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(tt.query)
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("content type %q", rec.Header().Get("Content-Type"))
			}
			if tt.code != 200 {
				return
			}
			var ex ExplainResult
			if err := json.Unmarshal(rec.Body.Bytes(), &ex); err != nil {
				t.Fatal(err)
			}
			if ex.Location == nil || ex.Location.Region != tt.region {
				t.Fatalf("location %+v, want region %s", ex.Location, tt.region)
			}
		})
	}
}
