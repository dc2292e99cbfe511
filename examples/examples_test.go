package examples_test

import (
	"io/fs"
	"testing"

	"github.com/meridian-lb/meridian/config"
	"github.com/meridian-lb/meridian/examples"
	"github.com/meridian-lb/meridian/routing"
)

// TestExamplesCompile validates and compiles every shipped example, so a
// config change that breaks one fails here rather than for a user.
func TestExamplesCompile(t *testing.T) {
	names, err := fs.Glob(examples.Files, "*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no examples embedded: %v", err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := fs.ReadFile(examples.Files, name)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(name, b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := routing.Compile(cfg, routing.Inputs{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
