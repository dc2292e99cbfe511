package catalog

import (
	"slices"
	"testing"

	"github.com/meridian-lb/meridian/config"
)

func TestKeyOf(t *testing.T) {
	tests := []struct {
		name     string
		sel      config.ConsulSelect
		wantTags string
		wantStr  string
	}{
		{name: "service only", sel: config.ConsulSelect{Service: "web"}, wantStr: "web"},
		{name: "tags sorted and deduplicated", sel: config.ConsulSelect{Service: "web", Tags: []string{"v2", "eu", "v2", ""}}, wantTags: "eu,v2", wantStr: "web[eu,v2]"},
		{name: "datacenter and near", sel: config.ConsulSelect{Service: "web", Datacenter: "dc2", Near: "_agent"}, wantStr: "web@dc2~_agent"},
		{name: "comma and backslash escaped", sel: config.ConsulSelect{Service: "web", Tags: []string{"a,b", `c\`}}, wantTags: `a\,b,c\\`, wantStr: `web[a\,b,c\\]`},
		{name: "health and meta do not matter", sel: config.ConsulSelect{Service: "web", Health: "any", Meta: map[string]string{"a": "b"}}, wantStr: "web"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := KeyOf(tc.sel)
			if k.Tags != tc.wantTags || k.String() != tc.wantStr {
				t.Errorf("KeyOf = %+v (%s), want tags %q string %q", k, k, tc.wantTags, tc.wantStr)
			}
		})
	}
}

func TestKeysOfShares(t *testing.T) {
	keys := KeysOf([]config.ConsulSelect{
		{Service: "web", Tags: []string{"b", "a"}, Health: "passing"},
		{Service: "web", Tags: []string{"a", "b"}, Health: "any"},
		{Service: "api"},
		{Service: "web", Tags: []string{"a", "b"}, Datacenter: "dc2"},
	})
	want := []Key{{Service: "api"}, {Service: "web", Tags: "a,b"}, {Service: "web", Datacenter: "dc2", Tags: "a,b"}}
	if !slices.Equal(keys, want) {
		t.Fatalf("KeysOf = %v, want %v", keys, want)
	}
}

func TestValidKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  Key
		ok   bool
	}{
		{"plain", Key{Service: "web"}, true},
		{"empty", Key{}, false},
		{"slash", Key{Service: "a/b"}, false},
		{"query", Key{Service: "a?b"}, false},
		{"control", Key{Service: "a\nb"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := validKey(tc.key); (err == nil) != tc.ok {
				t.Errorf("validKey(%q) = %v", tc.key.Service, err)
			}
		})
	}
}

func FuzzTagCodec(f *testing.F) {
	f.Add("eu", "v2", "")
	f.Add("a,b", `c\`, `\,`)
	f.Add("", "", "")
	f.Add(`\\\`, ",,", "x")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		tags := []string{a, b, c}
		enc := encodeTags(tags)
		got := decodeTags(enc)
		var want []string
		for _, tg := range tags {
			if tg != "" {
				want = append(want, tg)
			}
		}
		slices.Sort(want)
		want = slices.Compact(want)
		if !slices.Equal(got, want) {
			t.Fatalf("decode(encode(%q)) = %q, want %q (encoded %q)", tags, got, want, enc)
		}
		if encodeTags(got) != enc {
			t.Fatalf("encoding not canonical: %q vs %q", encodeTags(got), enc)
		}
		// Arbitrary strings decode without panicking.
		_ = decodeTags(a + b + c)
	})
}
