// Package tlshello follows the cleartext part of a TLS handshake in the
// reassembled byte stream of each direction of a flow and extracts what
// Suricata's TLS rule buffers and EVE "tls" object carry:
//
//	ClientHello   SNI (first host_name), JA3 string and its MD5 (hex),
//	              JA4 fingerprint ("t13d1516h2_8daaf6152771_e5627efa2ab1")
//	ServerHello   JA3S string and its MD5, the negotiated version
//	Certificate   the first (leaf) certificate of a TLS ≤ 1.2 server:
//	              subject and issuer as Suricata prints them
//	              ("C=US, O=Let's Encrypt, CN=R3": RDNs in certificate
//	              order joined by ", ", multi-valued RDNs by " + "),
//	              serial as colon-separated upper hex of the DER integer
//	              ("00:A1:..." keeps a leading zero byte, as Suricata),
//	              SHA-1 fingerprint as colon-separated lower hex
//
// JA3 follows the published algorithm (salesforce/ja3):
// "Version,Ciphers,Extensions,EllipticCurves,ECPointFormats" with decimal
// values joined by "-"; GREASE values (RFC 8701, 0x?a?a) are left out of
// every list. JA3S is "Version,Cipher,Extensions" of the ServerHello. The
// version is the legacy one of the hello (771 for TLS 1.2 and 1.3).
// JA4 follows FoxIO's JA4.md (BSD-3-Clause; ja4.go details each part):
// always "t" (TLS over TCP), version from supported_versions, SNI flag,
// cipher and extension counts, ALPN first/last character, then truncated
// SHA-256 of the sorted ciphers and of the sorted extensions plus the
// signature algorithms, GREASE left out everywhere.
//
// Contract: Feed takes the in-order bytes of one direction (0 client to
// server, 1 server to client) in any split: records may span Feed calls
// and handshake messages may span records. It returns the Events the bytes
// completed; results stay valid in Info until Reset. A direction stops
// being followed, and Status says why, when it starts encrypting
// (ChangeCipherSpec or application data: Encrypted), when its bytes do not
// frame as TLS records or a hello does not parse (NotTLS, which includes
// SSLv2-style hellos), or when a handshake message we keep is larger than
// Max bytes (Overflow; default MaxMessage = 64 KiB per direction). In TLS
// 1.3 the certificate is encrypted: no Certificate event, by design.
// Messages we do not need (and the rest of a certificate chain past the
// first certificate) are skipped without being buffered.
//
// Cost: no allocation in steady state. A message that arrives whole in
// one Feed is parsed in place; one split across Feed calls or records is
// copied into a per-direction buffer that grows once and is reused by a
// pooled Parser (Reset keeps buffers up to 16 KiB). Certificates are read
// by a minimal DER walk (tbsCertificate → serial, issuer, subject) rather
// than crypto/x509: x509.ParseCertificate allocates tens of objects and
// parses every extension and the key, ~10-20 µs per certificate, where the
// walk costs well under a microsecond plus the SHA-1 of the DER bytes.
// JA4 costs two sorts of ~20 values and two SHA-256 of ~100 bytes per
// ClientHello (about 0.4 µs of a ~1 µs hello, BenchmarkClientHello), into
// Parser scratch buffers kept by Reset.
// Measured numbers are in the benchmarks (tlshello_test.go).
//
// A Parser is not safe for concurrent use; one serves one flow at a time.
package tlshello
