package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Record layout (little endian), one per wal entry:
//
//	crc32c(4) | version(1) | enqueue unix ns(8) | uvarint len | subject | uvarint len | msg id | data
//
// The CRC covers everything after itself. It catches what the wal cannot:
// a tail that power loss left zero-filled parses as empty wal entries.
const (
	recVersion = 1
	recHeader  = 4 + 1 + 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorruptRecord marks an entry whose bytes are not a record we wrote.
var errCorruptRecord = errors.New("spool: corrupt record")

// appendRecord encodes one record onto dst.
func appendRecord(dst []byte, subject, msgID string, data []byte, enq time.Time) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, recVersion)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(enq.UnixNano()))
	dst = binary.AppendUvarint(dst, uint64(len(subject)))
	dst = append(dst, subject...)
	dst = binary.AppendUvarint(dst, uint64(len(msgID)))
	dst = append(dst, msgID...)
	dst = append(dst, data...)
	binary.LittleEndian.PutUint32(dst[start:], crc32.Checksum(dst[start+4:], castagnoli))
	return dst
}

// record is a decoded entry. Its byte slices alias the encoded buffer.
type record struct {
	subject, msgID, data []byte
	enqueued             time.Time
}

// decodeRecord parses b without copying.
func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) < recHeader {
		return r, fmt.Errorf("%w: %d bytes, shorter than the header", errCorruptRecord, len(b))
	}
	if crc32.Checksum(b[4:], castagnoli) != binary.LittleEndian.Uint32(b) {
		return r, fmt.Errorf("%w: checksum mismatch", errCorruptRecord)
	}
	if b[4] != recVersion {
		return r, fmt.Errorf("%w: version %d", errCorruptRecord, b[4])
	}
	r.enqueued = time.Unix(0, int64(binary.LittleEndian.Uint64(b[5:])))
	rest := b[recHeader:]
	var ok bool
	if r.subject, rest, ok = cutField(rest); !ok || len(r.subject) == 0 {
		return r, fmt.Errorf("%w: bad subject field", errCorruptRecord)
	}
	if r.msgID, rest, ok = cutField(rest); !ok {
		return r, fmt.Errorf("%w: bad msg id field", errCorruptRecord)
	}
	r.data = rest
	return r, nil
}

func cutField(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// diskSize is what an entry of n bytes occupies in a wal segment (the wal's
// own uvarint length prefix plus the data).
func diskSize(n int) int64 {
	var tmp [binary.MaxVarintLen64]byte
	return int64(binary.PutUvarint(tmp[:], uint64(n)) + n)
}
