// Package compress compresses HTTP responses on the fly with zstd, brotli
// or gzip, chosen by the request's Accept-Encoding, as Caddy's encode and
// Traefik's Compress middleware do. It owns the negotiation, the decision
// per response, and the encoders (klauspost/compress for zstd and gzip,
// andybalholm/brotli for br) with their pools. It knows nothing of config
// or routes: package policy compiles a route's compress block into a Spec.
//
// # Negotiation
//
// Wrap parses Accept-Encoding once per request (RFC 9110 12.5.3: q-values,
// "*", "identity", x-gzip as gzip; see acceptance.choose) and picks the
// coding with the highest weight, ties going to the server's order in
// Spec.Encodings. A request without Accept-Encoding, a HEAD request and
// one carrying Cache-Control: no-transform get nothing compressed.
//
// # The decision
//
// It is made when the handler writes the header, from the status and the
// header as the handler (the proxy: the upstream) left it. A response is
// sent as it is when it is 1xx, 204 or 304, is 206 or has Content-Range,
// already has a Content-Encoding, says Cache-Control: no-transform, has no
// Content-Type or one whose media type is not in Spec.Types, or has a
// Content-Length below MinSize. Otherwise it is compressed: Content-Length
// and Accept-Ranges go, Content-Encoding is set, a strong ETag is weakened
// (W/, which still matches the upstream's tag under If-None-Match's weak
// comparison), and "Vary: Accept-Encoding" is added. Vary is also added to
// responses of a compressible type that this client gets uncompressed, and
// to 304s, so that caches keep the variants apart. When the length is
// unknown, up to MinSize bytes are held back: a body that ends below it is
// sent as it is, with its Content-Length. A Flush, or a response that
// announces trailers, ends the holding and commits to compressing, since
// the response is then a stream (SSE) whose client wants the bytes now.
// Informational responses (103 Early Hints) pass through at once. A Range
// request is judged by its response: a 206 or a Content-Range is left
// alone, a 200 (the upstream ignored the range) is compressed like any
// other, as nginx and Caddy do.
//
// # Streaming
//
// Flush and FlushError flush the encoder (a point every decoder can decode
// up to) and then the underlying writer, so server-sent events and long
// polls arrive as they are written. The writer has Unwrap, so
// http.ResponseController reaches the server's writer (deadlines, full
// duplex, hijack), and SetWriteDeadline, which the proxy's writer asserts
// for directly.
//
// # Memory
//
// A response holds at most MinSize bytes (MaxMinSize, 64 KiB, at most;
// 1 KiB by config default) while undecided, in a pooled buffer, and, once
// it compresses, one encoder. Measured (TestEncoderMemory), an encoder
// keeps about 1.0 MiB for gzip (level 5 tables and 32 KiB window), 2.0 MiB
// for zstd (256 KiB window, SpeedDefault, low-memory tables) and 2.5 MiB
// for brotli (quality 4, 256 KiB window), brotli growing to about 4.5 MiB
// on a multi-MiB body written without flushes. So a compressing response
// costs at most about 4.6 MiB, typically 1–2.5 MiB, for as long as it
// lasts (an SSE stream keeps its encoder until it ends). Finished encoders
// go back to the Policy's pools, which the garbage collector drains when
// they sit idle.
//
// # Concurrency contract
//
// A Policy is immutable after New and safe for concurrent use by any number
// of requests; its pools are safe for concurrent use. There is no
// package-level mutable state: a route's encoders live in its Policy. The
// writer Wrap returns is, like any ResponseWriter, for the request's
// handler goroutine; finish is called once, after the handler has returned
// (deferring it is fine: during a panic such as http.ErrAbortHandler it
// still returns the encoder, and the server aborts the response anyway).
// Writes after finish fail; a second finish does nothing.
package compress
