// Package mime is a streaming MIME parser (RFC 2045-2049, RFC 5322) for mail
// (SMTP DATA/BDAT, POP3 RETR, IMAP literals) and for HTTP multipart/form-data
// uploads. It tells a Handler where each message and leaf part begins and ends,
// hands over each part's decoded bytes (base64, quoted-printable, uuencode, or as
// sent) and counts anomalies instead of failing.
//
// Contract:
//   - Write accepts any split of the input: one byte at a time gives exactly the
//     same Handler calls, in the same order and with the same byte chunks, as the
//     whole message in one Write. Events are decided per line, so a line's bytes
//     (at most 2 KiB of an overlong line) are held until its end is seen, and
//     decoded bytes are handed over in 4 KiB chunks (the last one at PartEnd):
//     up to about 6 KiB of a part can trail the Write that carried it; all of
//     it is delivered before PartEnd, which comes with the delimiter line or
//     Close.
//   - Memory per Parser is bounded by Limits.MaxHeader (header fields kept for
//     decoding), a 2 KiB line buffer, a 4 KiB output buffer and MaxDepth
//     boundaries; never by the message size. A Parser is reusable after Init.
//   - Slices passed to PartData alias the Parser's buffers or the caller's
//     input: valid only during the call. *Part and *Header are reused: copy
//     what you keep.
//   - Nothing is dropped silently: a limit or a malformed structure calls
//     Anomaly (see the constants below for the exact strings). Past MaxDepth a
//     multipart or message/rfc822 is handed over as one opaque leaf part
//     (undecoded: treat as unscannable); past MaxParts the rest of the input is
//     ignored.
//   - Leaf parts: every entity that is not multipart/* and not message/rfc822
//     (a message/rfc822 sent base64 or quoted-printable is a leaf). uuencoded
//     blocks ("begin 644 name" ... "end") inside a text/* part sent 7bit/8bit
//     end the text part, become their own part (Encoding "x-uuencode",
//     ContentType "application/octet-stream", Disposition "attachment",
//     Filename from the begin line), after which the rest of the text is
//     reported again as a new part with the text part's attributes.
//   - Header fields (Header) and file names are RFC 2047 / RFC 2231 decoded to
//     valid UTF-8 and capped at 512 bytes. Charsets: see charset.go
//     (ISO-2022-JP, Shift_JIS, EUC-JP, Latin-1/9, windows-1252, UTF-8).
//
// Hot path: Write costs one scan for '\n' per line, a table lookup per base64
// or quoted-printable byte, and no allocation in steady state (proven by
// TestWriteNoAlloc); each header block allocates a few strings.
package mime
