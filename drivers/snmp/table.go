package snmp

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/emberwatch/emberwatch/drivers/profile"
	"github.com/gosnmp/gosnmp"
)

// walkColumns walks table columns in lockstep with GetBulk (GetNext on
// v1), calling fn for each answered instance inside its column. It stops
// a column at its end, endOfMibView or after maxRows instances.
func (p *Poller) walkColumns(ctx context.Context, cols []string, maxRows int, fn func(col int, row string, v gosnmp.SnmpPDU)) error {
	// One request carries at most maxOIDs varbinds (gosnmp enforces it on
	// GetBulk too): walk wide tables in groups of columns.
	for start := 0; start < len(cols); start += p.maxOIDs {
		end := min(start+p.maxOIDs, len(cols))
		err := p.walkGroup(ctx, cols[start:end], maxRows, func(c int, row string, v gosnmp.SnmpPDU) { fn(start+c, row, v) })
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *Poller) walkGroup(ctx context.Context, cols []string, maxRows int, fn func(col int, row string, v gosnmp.SnmpPDU)) error {
	// Scratch reused across rounds: a steady walk allocates nothing here.
	w := &p.walk
	n := len(cols)
	if cap(w.cur) < n {
		w.cur, w.count, w.active, w.next, w.oids = make([]string, n), make([]int, n), make([]int, n), make([]int, n), make([]string, 0, n)
	}
	cur, count, active, oids := w.cur[:n], w.count[:n], w.active[:n], w.oids[:0]
	w.next = w.next[:0]
	copy(cur, cols)
	for i := range cols {
		active[i], count[i] = i, 0
	}
	reps := p.maxReps
	// Bound the loop: every request moves each active column by >= 1 row.
	for iter := 0; len(active) > 0 && iter < maxRows+16; iter++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		oids = oids[:0]
		for _, c := range active {
			oids = append(oids, cur[c])
		}
		var (
			res *gosnmp.SnmpPacket
			err error
		)
		p.requests++
		if p.g.Version == gosnmp.Version1 {
			res, err = p.g.GetNext(oids)
		} else {
			// Keep the answer small enough for one datagram.
			r := reps
			if n := len(oids) * r; n > 240 {
				r = max(1, 240/len(oids))
			}
			res, err = p.g.GetBulk(oids, 0, uint32(r))
		}
		if err != nil {
			return err
		}
		if res.Error == gosnmp.TooBig && reps > 1 {
			reps /= 2
			continue
		}
		if res.Error == gosnmp.NoSuchName {
			// v1 end of view.
			return nil
		}
		if res.Error != gosnmp.NoError {
			return fmt.Errorf("walk %s: error-status %s", cols[active[0]], res.Error)
		}
		n := len(oids)
		next := w.next[:0]
		for a, c := range active {
			prefix := cols[c] + "."
			done, moved := false, false
			for r := 0; ; r++ {
				k := r*n + a
				if k >= len(res.Variables) {
					break
				}
				v := res.Variables[k]
				if v.Type == gosnmp.EndOfMibView || !strings.HasPrefix(v.Name, prefix) {
					done = true
					break
				}
				if !oidLess(cur[c], v.Name) {
					done = true // an agent going backwards would loop forever
					break
				}
				cur[c] = v.Name
				moved = true
				fn(c, v.Name[len(prefix):], v)
				count[c]++
				if count[c] >= maxRows {
					done = true
					break
				}
			}
			if !done && moved {
				next = append(next, c)
			}
		}
		// Swap the two buffers: next becomes active, active is reused as next.
		w.active, w.next = next, active[:0]
		active = next
	}
	return nil
}

// walkRound reads a table's value columns for this round.
func (p *Poller) walkRound(ctx context.Context, ti int) error {
	t := &p.tables[ti]
	return p.walkColumns(ctx, t.cols, t.maxRows, func(_ int, _ string, v gosnmp.SnmpPDU) {
		if si, ok := p.byOID[v.Name]; ok {
			p.store(si, v)
		}
	})
}

// discoverTables walks every table block once to fix its rows and
// compiles one set of points per kept row. Nested table blocks are child
// tables linked to the enclosing block's rows by their parent_column.
func (p *Poller) discoverTables(ctx context.Context) error {
	for i := range p.prof.Blocks {
		if _, err := p.discoverTable(ctx, &p.prof.Blocks[i], nil); err != nil {
			return err
		}
	}
	return nil
}

func numOf(v gosnmp.SnmpPDU) (int, bool) {
	rv, ok := rawOf(&v)
	if !ok || !rv.isNum {
		return 0, false
	}
	return int(rv.num), true
}

func textOf(v gosnmp.SnmpPDU) string {
	rv, ok := rawOf(&v)
	switch {
	case !ok:
		return ""
	case rv.isText:
		return rv.text
	default:
		return strconv.FormatInt(rv.num, 10)
	}
}

func (p *Poller) discoverTable(ctx context.Context, b *profile.Block, parent map[string]map[string]int) (map[string]map[string]int, error) {
	if b.Table == "" {
		return nil, fmt.Errorf("snmp device %s: profile %s: %s:%d: block %q: SNMP blocks need table:", p.cfg.name(), p.prof.ID, p.prof.File, b.Line, b.Name)
	}
	where := fmt.Sprintf("snmp device %s: profile %s: block %q (table %s)", p.cfg.name(), p.prof.ID, b.Name, b.Table)
	entry := normOID(b.Table)
	maxRows := b.MaxRows
	if maxRows <= 0 {
		maxRows = defaultMaxRows
	}
	tab := table{name: b.Name, entry: entry, maxRows: maxRows}
	colSet := map[string]bool{}
	var valueCols []string
	addCol := func(oid string, value bool) {
		oid = normOID(oid)
		if oid == "" || colSet[oid] {
			return
		}
		colSet[oid] = true
		if value {
			valueCols = append(valueCols, oid)
		}
	}
	for _, pp := range b.Points {
		addCol(pp.OID, true)
		for _, fb := range pp.Fallback {
			addCol(fb.OID, true)
		}
	}
	addCol(b.IndexColumn, false)
	if b.Select != nil {
		addCol(b.Select.Column, false)
	}
	addCol(b.ParentColumn, false)
	cols := make([]string, 0, len(colSet))
	for c := range colSet {
		cols = append(cols, c)
	}
	sort.Slice(cols, func(i, j int) bool { return oidLess(cols[i], cols[j]) })
	tab.cols = valueCols
	got := map[string]map[string]gosnmp.SnmpPDU{} // column -> row -> value
	rowSet := map[string]bool{}
	// A select block keeps few rows of a table shared with other points:
	// walk past the rows it does not keep.
	walkMax := maxRows
	if b.Select != nil || b.ParentColumn != "" {
		walkMax = max(maxRows, 16*defaultMaxRows)
	}
	tab.maxRows = walkMax
	err := p.walkColumns(ctx, cols, walkMax, func(c int, row string, v gosnmp.SnmpPDU) {
		m := got[cols[c]]
		if m == nil {
			m = map[string]gosnmp.SnmpPDU{}
			got[cols[c]] = m
		}
		m[row] = v
		rowSet[row] = true
	})
	if err != nil {
		_, werr := p.classify(err)
		return nil, fmt.Errorf("%s: discover rows: %w", where, werr)
	}
	ti := len(p.tables)
	rows := map[string]map[string]int{}
	// Some agents (EAST iStars) index table rows "1.0", "2.0": a trailing
	// .0 on every row is not the instance number.
	trailingZero := len(rowSet) > 0
	for row := range rowSet {
		if !strings.HasSuffix(row, ".0") {
			trailingZero = false
		}
	}
	seen := map[string]bool{}
	for _, row := range sortedKeys(rowSet) {
		if len(rows) >= maxRows {
			p.log.Warn("table has more rows than max_rows; the rest are ignored", "block", b.Name, "max_rows", maxRows)
			break
		}
		if s := b.Select; s != nil {
			v, ok := got[normOID(s.Column)][row]
			if !ok || strings.TrimPrefix(textOf(v), ".") != strings.TrimPrefix(s.Equals, ".") {
				continue
			}
		}
		var inst int
		switch {
		case b.IndexColumn != "":
			v, ok := got[normOID(b.IndexColumn)][row]
			n, isNum := numOf(v)
			if !ok || !isNum {
				p.log.Warn("table row without an index value; skipped", "block", b.Name, "row", row)
				continue
			}
			inst = n
		default:
			parts := strings.Split(row, ".")
			if trailingZero {
				parts = parts[:len(parts)-1]
			}
			k := len(parts) - 1
			if b.IndexPart > 0 {
				k = b.IndexPart - 1
			}
			if k >= len(parts) {
				continue
			}
			n, err := strconv.Atoi(parts[k])
			if err != nil {
				continue
			}
			inst = n
		}
		vars := map[string]int{}
		if parent != nil {
			v, ok := got[normOID(b.ParentColumn)][row]
			ref, isNum := numOf(v)
			pv, found := parent[strconv.Itoa(ref)]
			if !ok || !isNum || !found {
				p.log.Warn("table row whose parent row is unknown; skipped", "block", b.Name, "row", row)
				continue
			}
			for k, x := range pv {
				vars[k] = x
			}
		}
		if b.Name == "" {
			if len(rows) > 0 {
				p.log.Warn("select block without a name matched several rows; the first is used", "table", b.Table, "row", row)
				continue
			}
		} else {
			vars[b.Name] = inst
		}
		key := fmt.Sprint(vars) // fmt prints maps sorted
		if seen[key] {
			p.log.Warn("table rows with the same instance; the first is used", "block", b.Name, "row", row)
			continue
		}
		seen[key] = true
		rows[row] = vars
		repl := func(s string) string {
			for k, x := range vars {
				s = strings.ReplaceAll(s, "{"+k+"}", strconv.Itoa(x))
			}
			return s
		}
		for i := range b.Points {
			pp := &b.Points[i]
			cps, err := p.compilePoint(pp, repl, func(col string) int { return p.addSlot(normOID(col)+"."+row, ti) })
			if err != nil {
				return nil, err
			}
			p.points = append(p.points, cps...)
		}
	}
	// A table without rows is not walked each round: rows that appear later
	// need a new poller (the agent rebuilds it after a device restart).
	if len(valueCols) > 0 && len(rows) > 0 {
		p.tables = append(p.tables, tab)
	}
	p.log.Debug("table discovered", "block", b.Name, "rows", len(rows))
	for i := range b.Blocks {
		if _, err := p.discoverTable(ctx, &b.Blocks[i], rows); err != nil {
			return nil, err
		}
	}
	return rows, nil
}
