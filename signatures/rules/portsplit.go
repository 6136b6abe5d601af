package rules

import (
	"slices"
	"sort"
)

// Port groups: a big bucket is split further by the packet's ports, as
// Suricata's signature group heads are.
//
// Most ET rules name ports: "any any -> any 53", "$HTTP_PORTS -> any",
// "any any -> any [139,445]". A rule without flow direction sits in the
// buckets of both directions, so a DNS answer (53 -> 40123) scans the
// literals of every "-> any 53" query rule, which can never match it: the
// client's port is not 53. A bucket of splitMinRules rules or more gets,
// per direction, sub-buckets keyed by the server's port (the destination
// of a packet to the server, the source of one to the client): one for
// each of the splitPorts ports its rules name most often on the server
// side, one for every other port. A sub-bucket holds the rules whose
// server side accepts its port (for "other": some port outside the named
// ones) and whose client side accepts some port that no prefiltered rule
// names in a short list. A packet whose client port is such an unnamed
// port (an ephemeral port, nearly always) scans its class's sub-bucket;
// any other packet, or one not TCP or UDP, scans the whole bucket. The
// sub-bucket is a superset of the rules whose header can match, so the
// prefilter loses nothing; verification still checks every port.
//
// A class is split off only when it drops at least a fifth of the rules
// (splitMaxShare); on ET Open that leaves the payload buckets split and
// the HTTP buffers whole (their rules all name $HTTP_PORTS).

const (
	splitMinRules = 256  // smallest bucket split
	splitPorts    = 4    // server ports with a sub-bucket of their own
	splitMaxShare = 0.8  // a class keeping more of the rules scans the whole bucket
	namedSpan     = 64   // a port range this narrow names its ports
	outsideProbe  = 4096 // ports acceptsOutside tries before it answers "yes"
)

// portSplit is one direction's sub-buckets of a bucket.
type portSplit struct {
	ports [splitPorts]uint16
	n     int
	sub   [splitPorts + 1]*bucket // by class: ports[i], then other; nil: the whole bucket
}

// portBits is a set of ports.
type portBits [1024]uint64

func (p *portBits) has(x uint16) bool { return p[x>>6]&(1<<(x&63)) != 0 }
func (p *portBits) set(x uint16)      { p[x>>6] |= 1 << (x & 63) }

// namedPorts returns the ports the rules name in short lists.
func namedPorts(rules []*Rule) *portBits {
	var p portBits
	for _, r := range rules {
		for _, ps := range [2]*portSet{&r.sp, &r.dp} {
			if ps.any {
				continue
			}
			for _, pr := range ps.pos {
				if int(pr.hi)-int(pr.lo) < namedSpan {
					for q := int(pr.lo); q <= int(pr.hi); q++ {
						p.set(uint16(q))
					}
				}
			}
		}
	}
	return &p
}

// acceptsOutside reports whether ps accepts some port for which excluded
// is false. It answers true when unsure (a superset is safe).
func (ps *portSet) acceptsOutside(excluded func(uint16) bool) bool {
	if ps.any {
		return true // excluded sets are a few hundred ports at most
	}
	ranges := ps.pos
	if len(ranges) == 0 {
		ranges = []portRange{{0, 65535}}
	}
	probes := 0
	for _, pr := range ranges {
		for q := int(pr.lo); q <= int(pr.hi); q++ {
			if probes++; probes > outsideProbe {
				return true
			}
			if !excluded(uint16(q)) && ps.match(uint16(q)) {
				return true
			}
		}
	}
	return false
}

// sides returns the port sets of r on the server and client side of a
// packet in direction dir (vToServer, vToClient).
func (r *Rule) sides(dir int) (srv, cli *portSet) {
	if dir == vToServer {
		return &r.dp, &r.sp
	}
	return &r.sp, &r.dp
}

// splitByPort builds b's sub-buckets for direction dir; nil when no class
// sheds enough rules.
func (b *bucket) splitByPort(dir int, named *portBits) *portSplit {
	if len(b.rules) < splitMinRules {
		return nil
	}
	// The server ports the rules name most.
	count := map[uint16]int{}
	for _, r := range b.rules {
		srv, _ := r.sides(dir)
		if r.bidir || srv.any {
			continue
		}
		for _, pr := range srv.pos {
			if int(pr.hi)-int(pr.lo) < namedSpan {
				for q := int(pr.lo); q <= int(pr.hi); q++ {
					count[uint16(q)]++
				}
			}
		}
	}
	top := make([]uint16, 0, len(count))
	for q := range count {
		top = append(top, q)
	}
	sort.Slice(top, func(i, j int) bool {
		if count[top[i]] != count[top[j]] {
			return count[top[i]] > count[top[j]]
		}
		return top[i] < top[j]
	})
	sp := &portSplit{n: min(len(top), splitPorts)}
	copy(sp.ports[:], top[:sp.n])
	inTop := func(q uint16) bool { return slices.Contains(sp.ports[:sp.n], q) }
	// Per rule: does its client side take an unnamed port, does its
	// server side take a port outside the top ones?
	cliOK := make([]bool, len(b.rules))
	srvOther := make([]bool, len(b.rules))
	for i, r := range b.rules {
		srv, cli := r.sides(dir)
		if r.bidir {
			cliOK[i] = r.sp.acceptsOutside(named.has) || r.dp.acceptsOutside(named.has)
			srvOther[i] = r.sp.acceptsOutside(inTop) || r.dp.acceptsOutside(inTop)
			continue
		}
		cliOK[i] = cli.acceptsOutside(named.has)
		srvOther[i] = srv.acceptsOutside(inTop)
	}
	kept := false
	for c := 0; c <= sp.n; c++ {
		sub := &bucket{}
		for i, r := range b.rules {
			if !cliOK[i] {
				continue
			}
			ok := srvOther[i]
			if c < sp.n {
				srv, _ := r.sides(dir)
				ok = srv.match(sp.ports[c]) || r.bidir && (r.sp.match(sp.ports[c]) || r.dp.match(sp.ports[c]))
			}
			if ok {
				sub.rules, sub.ids = append(sub.rules, r), append(sub.ids, b.ids[i])
			}
		}
		if float64(len(sub.rules)) > splitMaxShare*float64(len(b.rules)) {
			continue
		}
		for _, o := range sp.sub[:c] { // an earlier class with the same rules
			if o != nil && sameRules(o.ids, sub.ids) {
				sub = o
				break
			}
		}
		sp.sub[c], kept = sub, true
	}
	if !kept {
		return nil
	}
	return sp
}

// pick returns the bucket in's ports select: a sub-bucket of b, or b.
func (b *bucket) pick(in *Input, named *portBits) *bucket {
	sp := b.split[in.dirIndex()]
	if sp == nil || in.Proto != 6 && in.Proto != 17 {
		return b
	}
	srv, cli := in.DstPort, in.SrcPort
	if !in.ToServer {
		srv, cli = cli, srv
	}
	if named.has(cli) {
		return b
	}
	c := sp.n
	for i, p := range sp.ports[:sp.n] {
		if p == srv {
			c = i
			break
		}
	}
	if s := sp.sub[c]; s != nil {
		return s
	}
	return b
}

// dirIndex is vToServer or vToClient.
func (in *Input) dirIndex() int {
	if in.ToServer {
		return vToServer
	}
	return vToClient
}
