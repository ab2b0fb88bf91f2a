package natrules

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// current is what the kernel has for our table.
type current struct {
	table  *nftables.Table // nil: the table does not exist
	chains []currentChain
}

type currentChain struct {
	chain *nftables.Chain
	rules []*nftables.Rule
}

// extras reports whether the table holds anything besides its chains: sets
// and maps (including anonymous sets of rules), stateful objects or
// flowtables. The kernel counts all of these in the table's use count.
func (c *current) extras() bool {
	return c.table != nil && int(tableUse(c.table)) > len(c.chains)
}

// tableUse returns the table's use count. google/nftables v0.3.0 decodes the
// big-endian NFTA_TABLE_USE attribute in host byte order; undo that. (The
// drift tests fail loudly if a library upgrade changes this.)
func tableUse(t *nftables.Table) uint32 {
	return binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Use))
}

func (c *current) chain(name string) (currentChain, bool) {
	for _, ch := range c.chains {
		if ch.chain.Name == name {
			return ch, true
		}
	}
	return currentChain{}, false
}

// open returns a lasting nftables connection in the calling thread's netns.
func open(opts ...nftables.ConnOption) (*nftables.Conn, error) {
	conn, err := nftables.New(append([]nftables.ConnOption{nftables.AsLasting()}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("natrules: open nftables netlink socket: %w", err)
	}
	return conn, nil
}

// readTable reads table `name` (family ip) with all its chains and rules.
// It only reads. The kernel's chain dump covers every ip table; chains of
// other tables are skipped without looking at them further.
func readTable(conn *nftables.Conn, name string) (*current, error) {
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("natrules: list ip tables: %w", err)
	}
	cur := &current{}
	for _, t := range tables {
		if t.Name == name {
			cur.table = t
			break
		}
	}
	if cur.table == nil {
		return cur, nil
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("natrules: list chains of table ip %s: %w", name, err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != name {
			continue
		}
		ch.Table = cur.table
		rules, err := conn.GetRules(cur.table, ch)
		if err != nil {
			return nil, fmt.Errorf("natrules: list rules of chain ip %s %s: %w", name, ch.Name, err)
		}
		cur.chains = append(cur.chains, currentChain{chain: ch, rules: rules})
	}
	return cur, nil
}

// sameHead reports whether an existing chain has the type, hook and priority
// of spec (the parts that cannot be changed in place).
func sameHead(ch *nftables.Chain, spec chainSpec) bool {
	if !spec.base() {
		return ch.Hooknum == nil && ch.Type == ""
	}
	return ch.Type == spec.typ &&
		ch.Hooknum != nil && *ch.Hooknum == *spec.hook &&
		ch.Priority != nil && *ch.Priority == *spec.priority
}

// matches reports whether cur is exactly the desired table, and if not, why.
func (c *current) matches(want []chainSpec) (bool, string) {
	if c.table == nil {
		return false, "table missing"
	}
	if c.table.Flags != 0 { // e.g. dormant; byte order does not matter for != 0
		return false, "table flags are set"
	}
	if c.extras() {
		return false, fmt.Sprintf("table holds %d objects besides its %d chains", int(tableUse(c.table))-len(c.chains), len(c.chains))
	}
	if len(c.chains) != len(want) {
		return false, fmt.Sprintf("%d chains, want %d", len(c.chains), len(want))
	}
	for _, spec := range want {
		ch, ok := c.chain(spec.name)
		if !ok {
			return false, "chain " + spec.name + " missing"
		}
		if !sameHead(ch.chain, spec) {
			return false, "chain " + spec.name + " has a different type, hook or priority"
		}
		if spec.base() && (ch.chain.Policy == nil || *ch.chain.Policy != nftables.ChainPolicyAccept) {
			return false, "chain " + spec.name + " policy is not accept"
		}
		if len(ch.rules) != len(spec.rules) {
			return false, fmt.Sprintf("chain %s has %d rules, want %d", spec.name, len(ch.rules), len(spec.rules))
		}
		for i, rs := range spec.rules {
			got := ch.rules[i]
			if !bytes.Equal(got.UserData, rs.userData()) {
				return false, fmt.Sprintf("chain %s rule %d: comment differs", spec.name, i)
			}
			if !sameExprs(got.Exprs, rs.exprs) {
				return false, fmt.Sprintf("chain %s rule %d (%s): expressions differ", spec.name, i, rs.comment)
			}
		}
	}
	return true, ""
}

// sameExprs compares two expression lists by their netlink encoding, with
// counter values ignored.
func sameExprs(a, b []expr.Any) bool {
	ca, errA := canonical(a)
	cb, errB := canonical(b)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

func canonical(exprs []expr.Any) ([]byte, error) {
	var out []byte
	for _, e := range exprs {
		if _, ok := e.(*expr.Counter); ok {
			e = &expr.Counter{}
		}
		b, err := expr.Marshal(byte(nftables.TableFamilyIPv4), e)
		if err != nil {
			return nil, err
		}
		// Each encoding is a length-prefixed attribute list; add our own
		// length prefix so that concatenations cannot collide.
		out = fmt.Appendf(out, "%d:", len(b))
		out = append(out, b...)
	}
	return out, nil
}

// Reconcile makes the table r.Table (DefaultTable if empty, family ip) in the
// calling thread's network namespace contain exactly the rules for r.
//
// Invalid input returns an error wrapping ErrInvalid and changes nothing. If
// the table already matches, nothing is written and changed is false; when
// nothing was committed to nftables in the namespace since a call found the
// table matching the same rules, the table is not even read again.
// Otherwise the whole table is rewritten in one nftables transaction and
// changed is true; if that transaction fails, the kernel keeps the previous
// table unchanged. No other table is modified.
func Reconcile(r Rules) (changed bool, err error) {
	n, err := r.normalized()
	if err != nil {
		return false, err
	}
	// Without a generation (a kernel before 5.14) every call reads the table.
	netns, gen, genErr := rulesetGeneration()
	if genErr == nil && stillMatches(netns, gen, n) {
		return false, nil
	}
	want := desired(n)

	conn, err := open(buffers(want))
	if err != nil {
		return false, err
	}
	defer func() { _ = conn.CloseLasting() }()

	cur, err := readTable(conn, n.Table)
	if err != nil {
		return false, err
	}
	if ok, _ := cur.matches(want); ok {
		if genErr == nil {
			rememberMatch(netns, gen, n)
		}
		return false, nil
	}
	forgetMatch(n.Table)

	table := &nftables.Table{Name: n.Table, Family: nftables.TableFamilyIPv4}
	if cur.extras() {
		// Someone put sets, objects or flowtables into our table. Rather
		// than learn to parse and delete every kind, drop the table and
		// build it anew, still within this one transaction.
		conn.DelTable(cur.table)
		cur = &current{}
	}
	// AddTable also resets table flags (e.g. dormant) on an existing table.
	conn.AddTable(table)
	// Flush every existing chain first, so no rule references a chain we
	// delete below (jumps only reach chains of the same table).
	for _, ch := range cur.chains {
		conn.FlushChain(ch.chain)
	}
	for _, ch := range cur.chains {
		i := slices.IndexFunc(want, func(s chainSpec) bool { return s.name == ch.chain.Name })
		if i < 0 || !sameHead(ch.chain, want[i]) {
			conn.DelChain(ch.chain)
		}
	}
	accept := nftables.ChainPolicyAccept
	chains := make([]*nftables.Chain, len(want))
	for i, spec := range want {
		ch := &nftables.Chain{Name: spec.name, Table: table}
		if spec.base() {
			ch.Type = spec.typ
			ch.Hooknum = spec.hook
			ch.Priority = spec.priority
			ch.Policy = &accept
		}
		chains[i] = conn.AddChain(ch)
	}
	for i, spec := range want {
		for _, rs := range spec.rules {
			conn.AddRule(&nftables.Rule{
				Table:    table,
				Chain:    chains[i],
				Exprs:    rs.exprs,
				UserData: rs.userData(),
			})
		}
	}
	if err := conn.Flush(); err != nil {
		return false, fmt.Errorf("natrules: replace table ip %s: %w", n.Table, err)
	}
	return true, nil
}

// Room for the batch of one table rewrite beyond its rules: the table, chain
// flushes, deletions and creations, and the batch framing.
const batchOverhead = 64 << 10

// perRule is what one rule adds to a batch besides its expressions and comment:
// its netlink and nfnetlink headers and attributes.
const perRule = 128

// perMessage is what one message of the batch costs in the receive buffer: the
// kernel acknowledges every message and echoes every rule back (google/nftables
// asks for the rule handles), each in its own socket buffer, and the kernel
// charges a buffer's full allocation, not its payload.
const perMessage = 4 << 10

// buffers sizes the netlink socket's buffers for a rewrite of the table want.
// The kernel refuses a batch larger than the send buffer (EMSGSIZE) and drops
// replies beyond the receive buffer (ENOBUFS); the defaults
// (net.core.wmem_default and rmem_default, 208 KiB) hold only a few hundred
// rules. Root gets the sizes asked for whatever net.core.wmem_max and rmem_max
// say (SO_SNDBUFFORCE, SO_RCVBUFFORCE).
func buffers(want []chainSpec) nftables.ConnOption {
	send, msgs := batchOverhead, len(want)*3+8 // chains: flush, delete, add; table and framing
	for _, c := range want {
		for _, r := range c.rules {
			b, _ := canonical(r.exprs)
			send += len(b) + len(r.userData()) + perRule
			msgs++
		}
	}
	send *= 2 // margin: the estimate leaves out attribute padding
	recv := send + msgs*perMessage
	return nftables.WithSockOptions(func(c *netlink.Conn) error {
		if have, err := c.WriteBuffer(); err != nil || have < send {
			if err := c.SetWriteBuffer(send); err != nil {
				return fmt.Errorf("natrules: netlink send buffer of %d bytes: %w", send, err)
			}
		}
		if have, err := c.ReadBuffer(); err != nil || have < recv {
			if err := c.SetReadBuffer(recv); err != nil {
				return fmt.Errorf("natrules: netlink receive buffer of %d bytes: %w", recv, err)
			}
		}
		return nil
	})
}

// Delete removes the table (family ip) and everything in it from the calling
// thread's network namespace. Deleting a table that does not exist is not an
// error. Empty table means DefaultTable.
func Delete(table string) error {
	if table == "" {
		table = DefaultTable
	}
	if err := validateTableName(table); err != nil {
		return err
	}
	conn, err := open()
	if err != nil {
		return err
	}
	defer func() { _ = conn.CloseLasting() }()
	cur, err := readTable(conn, table)
	if err != nil {
		return err
	}
	if cur.table == nil {
		return nil
	}
	forgetMatch(table)
	conn.DelTable(cur.table)
	if err := conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("natrules: delete table ip %s: %w", table, err)
	}
	return nil
}
