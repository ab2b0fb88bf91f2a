package registry

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The wire format. Every message of this package starts with MsgTag and a type byte, so
// that a delegate shared with other gossip traffic can tell them apart (IsMessage). Numbers
// are uvarints, strings and byte strings are uvarint-length-prefixed. A record is
//
//	kind(1) flags(1) key version created [value]   (value only when not deleted)
//
// with its origin given once per message.
const (
	// MsgTag is the first byte of every message and push/pull state of this package.
	MsgTag byte = 'R'

	msgDelta   byte = 'd' // origin record: one write, gossiped
	msgRequest byte = 'q' // requester id origin from flags: "send me origin's records newer than from"
	msgPart    byte = 'p' // responder id origin flags W floor part parts flate(count records...)
	msgState   byte = 's' // sender clock count (origin W M live hash8)...: push/pull digest

	flagDeleted byte = 1 // record flag: tombstone
	flagFull    byte = 1 // request/part flag: full snapshot, replacing what the receiver holds
)

// Limits on remote input beyond the record limits.
const (
	// maxMsgSize bounds any message or state this package accepts (memberlist itself
	// refuses user messages over 20 MiB).
	maxMsgSize = 16 << 20
	// maxPartRaw bounds one response part once decompressed.
	maxPartRaw = 4 << 20
	// partTarget is the uncompressed size at which a response starts a new part.
	partTarget = 512 << 10
	// maxParts bounds the parts of one response.
	maxParts = 4096
	// maxOrigins bounds the origins a registry tracks and a digest lists.
	maxOrigins = 1024
)

var errTrailing = errors.New("trailing bytes")

// IsMessage reports whether b (a gossip user message or a push/pull state) belongs to this
// package, so that a delegate can route it here.
func IsMessage(b []byte) bool { return len(b) >= 2 && b[0] == MsgTag }

// reader decodes untrusted input; the first error sticks and later reads return zero
// values, so decoders check r.err once at the end (and before any allocation sized by
// input).
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.fail("bad number")
		return 0
	}
	r.b = r.b[k:]
	return n
}

// count reads a uvarint that must not exceed limit.
func (r *reader) count(limit int, what string) int {
	n := r.uvarint()
	if n > uint64(limit) {
		r.fail("%s %d over limit %d", what, n, limit)
		return 0
	}
	return int(n)
}

// chunk reads a length-prefixed byte string of at most limit bytes, aliasing r.b.
func (r *reader) chunk(limit int, what string) []byte {
	n := r.count(limit, what+" length")
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail("%s truncated", what)
		return nil
	}
	c := r.b[:n:n]
	r.b = r.b[n:]
	return c
}

func (r *reader) fixed64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// end fails when input is left over.
func (r *reader) end() {
	if r.err == nil && len(r.b) > 0 {
		r.err = errTrailing
	}
}

// name reads an origin or node name.
func (r *reader) name() string {
	b := r.chunk(MaxOriginLen, "name")
	if r.err != nil {
		return ""
	}
	s := string(b)
	if err := checkOrigin(s); err != nil {
		r.fail("%w", err)
	}
	return s
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendRecord appends rec without its origin.
func appendRecord(b []byte, rec *Record) []byte {
	var flags byte
	if rec.Deleted {
		flags |= flagDeleted
	}
	b = append(b, byte(rec.Kind), flags)
	b = appendString(b, rec.Key)
	b = binary.AppendUvarint(b, uint64(rec.Version))
	b = binary.AppendUvarint(b, rec.Created)
	if !rec.Deleted {
		b = binary.AppendUvarint(b, uint64(len(rec.Value)))
		b = append(b, rec.Value...)
	}
	return b
}

// readRecord reads what appendRecord wrote and validates it; the record owns its memory.
func (r *reader) record(origin string) Record {
	rec := Record{Kind: Kind(r.byte()), Origin: origin}
	flags := r.byte()
	rec.Key = string(r.chunk(MaxKeyLen, "key"))
	rec.Version = Version(r.uvarint())
	rec.Created = r.uvarint()
	if flags&^flagDeleted != 0 {
		r.fail("unknown record flags %#x", flags)
	}
	rec.Deleted = flags&flagDeleted != 0
	if !rec.Deleted {
		if v := r.chunk(MaxValueSize, "value"); len(v) > 0 {
			rec.Value = bytes.Clone(v)
		}
	}
	if r.err == nil {
		if err := rec.check(); err != nil {
			r.fail("%w", err)
		}
	}
	return rec
}

// header checks the tag and type byte and bounds the size.
func header(b []byte, typ byte) (*reader, error) {
	if len(b) > maxMsgSize {
		return nil, fmt.Errorf("message of %d bytes over limit %d", len(b), maxMsgSize)
	}
	if len(b) < 2 || b[0] != MsgTag || b[1] != typ {
		return nil, fmt.Errorf("not a registry message of type %q", typ)
	}
	return &reader{b: b[2:]}, nil
}

// encodeDelta is the gossip message of one write.
func encodeDelta(rec *Record) []byte {
	b := make([]byte, 0, 16+len(rec.Origin)+len(rec.Key)+len(rec.Value))
	b = append(b, MsgTag, msgDelta)
	b = appendString(b, rec.Origin)
	return appendRecord(b, rec)
}

func decodeDelta(b []byte) (Record, error) {
	r, err := header(b, msgDelta)
	if err != nil {
		return Record{}, err
	}
	origin := r.name()
	rec := r.record(origin)
	r.end()
	if r.err != nil {
		return Record{}, fmt.Errorf("delta: %w", r.err)
	}
	return rec, nil
}

// request asks a peer for the records of one origin newer than From (or for all of them,
// replacing what the requester holds, when Full).
type request struct {
	From   string  // requester's node name (where to answer)
	ID     uint64  // requester's id of this request
	Origin string  // whose records
	Since  Version // requester's watermark for Origin
	Full   bool
}

func encodeRequest(q request) []byte {
	b := []byte{MsgTag, msgRequest}
	b = appendString(b, q.From)
	b = binary.AppendUvarint(b, q.ID)
	b = appendString(b, q.Origin)
	b = binary.AppendUvarint(b, uint64(q.Since))
	var flags byte
	if q.Full {
		flags = flagFull
	}
	return append(b, flags)
}

func decodeRequest(b []byte) (request, error) {
	r, err := header(b, msgRequest)
	if err != nil {
		return request{}, err
	}
	q := request{From: r.name(), ID: r.uvarint(), Origin: r.name(), Since: Version(r.uvarint())}
	flags := r.byte()
	if flags&^flagFull != 0 {
		r.fail("unknown request flags %#x", flags)
	}
	q.Full = flags&flagFull != 0
	r.end()
	if r.err != nil {
		return request{}, fmt.Errorf("request: %w", r.err)
	}
	return q, nil
}

// part is one message of a response to a request.
type part struct {
	From    string  // responder's node name
	ID      uint64  // the request's id
	Origin  string  // whose records
	Full    bool    // a full snapshot: the receiver drops what it holds of Origin up to W and not in it
	W       Version // responder's watermark for Origin when it answered
	Floor   Version // responder's tombstone GC floor for Origin
	Index   int     // this part's index
	Parts   int     // how many parts the response has
	Records []Record
}

// encodeParts splits recs into parts of about partTarget bytes before compression (at
// least one part, possibly empty), each compressed with flate.
func encodeParts(hdr part, recs []*Record) ([][]byte, error) {
	var blocks [][]byte
	var cur []byte
	n := 0
	flush := func() {
		blocks = append(blocks, binary.AppendUvarint(nil, uint64(n)), cur)
		cur, n = nil, 0
	}
	for _, rec := range recs {
		cur = appendRecord(cur, rec)
		n++
		if len(cur) >= partTarget {
			flush()
		}
	}
	if n > 0 || len(blocks) == 0 {
		flush()
	}
	total := len(blocks) / 2
	if total > maxParts {
		return nil, fmt.Errorf("response of %d parts over limit %d", total, maxParts)
	}
	out := make([][]byte, 0, total)
	var zbuf bytes.Buffer
	// BestSpeed: a third of the CPU of the default level for about a quarter more bytes
	// (100 x 1000 endpoint records: 124 ms and 3.8 MB against 377 ms and 3.1 MB).
	zw, _ := flate.NewWriter(&zbuf, flate.BestSpeed) // level is valid: no error
	for i := range total {
		b := []byte{MsgTag, msgPart}
		b = appendString(b, hdr.From)
		b = binary.AppendUvarint(b, hdr.ID)
		b = appendString(b, hdr.Origin)
		var flags byte
		if hdr.Full {
			flags = flagFull
		}
		b = append(b, flags)
		b = binary.AppendUvarint(b, uint64(hdr.W))
		b = binary.AppendUvarint(b, uint64(hdr.Floor))
		b = binary.AppendUvarint(b, uint64(i))
		b = binary.AppendUvarint(b, uint64(total))
		zbuf.Reset()
		zbuf.Write(b)
		zw.Reset(&zbuf)
		if _, err := zw.Write(blocks[2*i]); err != nil {
			return nil, err
		}
		if _, err := zw.Write(blocks[2*i+1]); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		out = append(out, bytes.Clone(zbuf.Bytes()))
	}
	return out, nil
}

// decodePart reads a part and its records (decompressing at most maxPartRaw bytes).
func decodePart(b []byte) (part, error) {
	r, err := header(b, msgPart)
	if err != nil {
		return part{}, err
	}
	p := part{From: r.name(), ID: r.uvarint(), Origin: r.name()}
	flags := r.byte()
	if flags&^flagFull != 0 {
		r.fail("unknown part flags %#x", flags)
	}
	p.Full = flags&flagFull != 0
	p.W = Version(r.uvarint())
	p.Floor = Version(r.uvarint())
	p.Index = r.count(maxParts, "part index")
	p.Parts = r.count(maxParts, "parts")
	if r.err == nil && (p.Parts == 0 || p.Index >= p.Parts) {
		r.fail("part %d of %d", p.Index, p.Parts)
	}
	if r.err != nil {
		return part{}, fmt.Errorf("part: %w", r.err)
	}
	zr := flate.NewReader(bytes.NewReader(r.b))
	raw, err := io.ReadAll(io.LimitReader(zr, maxPartRaw+1))
	if err != nil {
		return part{}, fmt.Errorf("part: decompress: %w", err)
	}
	if len(raw) > maxPartRaw {
		return part{}, fmt.Errorf("part: over %d bytes decompressed", maxPartRaw)
	}
	rr := &reader{b: raw}
	// A record takes at least 5 bytes, which bounds the count by the data.
	n := rr.count(len(raw)/5, "record count")
	if rr.err == nil {
		p.Records = make([]Record, 0, n)
	}
	for i := 0; i < n && rr.err == nil; i++ {
		p.Records = append(p.Records, rr.record(p.Origin))
	}
	rr.end()
	if rr.err != nil {
		return part{}, fmt.Errorf("part records: %w", rr.err)
	}
	return p, nil
}

// digestEntry is what a node knows of one origin.
type digestEntry struct {
	Origin string
	W      Version // watermark: complete up to this version
	M      Version // highest version seen
	Live   int     // live records held
	Hash   uint64  // hash of the live records' (kind, key, version)
}

// digest is the push/pull state: the sender, its Lamport clock and one entry per origin.
type digest struct {
	From    string
	Clock   uint64
	Entries []digestEntry
}

func encodeDigest(d digest) []byte {
	b := make([]byte, 0, 16+len(d.From)+len(d.Entries)*48)
	b = append(b, MsgTag, msgState)
	b = appendString(b, d.From)
	b = binary.AppendUvarint(b, d.Clock)
	b = binary.AppendUvarint(b, uint64(len(d.Entries)))
	for _, e := range d.Entries {
		b = appendString(b, e.Origin)
		b = binary.AppendUvarint(b, uint64(e.W))
		b = binary.AppendUvarint(b, uint64(e.M))
		b = binary.AppendUvarint(b, uint64(e.Live))
		b = binary.BigEndian.AppendUint64(b, e.Hash)
	}
	return b
}

func decodeDigest(b []byte) (digest, error) {
	r, err := header(b, msgState)
	if err != nil {
		return digest{}, err
	}
	d := digest{From: r.name(), Clock: r.uvarint()}
	n := r.count(maxOrigins, "origin count")
	if r.err == nil {
		d.Entries = make([]digestEntry, 0, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		e := digestEntry{Origin: r.name(), W: Version(r.uvarint()), M: Version(r.uvarint())}
		e.Live = r.count(MaxRecordsPerOrigin, "live count")
		e.Hash = r.fixed64()
		if r.err == nil && e.W > e.M {
			r.fail("origin %s: watermark %s above max %s", e.Origin, e.W, e.M)
		}
		d.Entries = append(d.Entries, e)
	}
	r.end()
	if r.err != nil {
		return digest{}, fmt.Errorf("state: %w", r.err)
	}
	return d, nil
}
