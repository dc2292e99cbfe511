// Package configtest writes config files for tests and benchmarks of the
// packages that parse, compile and reload them, so the large config the
// reload budget is stated for has one shape everywhere. Only tests import
// it. It has no state.
package configtest
