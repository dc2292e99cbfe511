// Package geotest builds small MaxMind-format databases for tests, so that
// geo, dns, proxy and end-to-end tests can exercise GeoIP lookups without
// shipping a third-party database.
//
// The records look like GeoIP2 Country records (continent, country and
// registered_country with iso_code/code, geoname_id and names in eight
// languages); a Record with City set also gets city, location, postal and
// subdivisions, like GeoIP2 City. Reserved networks are allowed in the
// database, but remember that geo.Locator answers non-global addresses
// (private, loopback, documentation ranges such as 192.0.2.0/24, ...) with
// the default region before it consults the database: give test clients
// global addresses, e.g. 81.2.69.0/24 or 2a02:ec0::/32.
//
// Everything here is safe for concurrent use by parallel tests.
package geotest
