package dga

import (
	"math"
	"strings"
)

// Rules of Score, each adding its weight when it holds for the registered
// label L (n bytes; letters, digits, '-'):
//
//	entropy    n > 12 and Shannon entropy > 3.5 bits/char   +0.4  (maltrail: 3.5)
//	consonants longest consonant run >= 6 (y is a vowel)    +0.4,
//	           run of 5                                     +0.3  (maltrail counts all consonants > 7..9)
//	vowels     n >= 8 and vowels/letters < 0.3              +0.3
//	digits     n >= 8, >= 3 digits and >= 3 letters,
//	           digit share 0.2..0.8 (hex/hash-like)          +0.3
//	long       n > 24                                       +0.2  (maltrail: 24)
//	bigrams    n >= 8, >= 4 letter pairs, of which rare in
//	           English (bigram.go) >= 30 %                  +0.3,
//	           >= 50 %                                      +0.4
//
// The score is the sum, at most 1; DefaultScoreThreshold is 0.7, so one
// rule alone never makes a name DGA-like. Measured by dga_test.go on 2000
// generated names per family: random letters 12-20 chars (Cryptolocker-
// like) 84 % over the threshold, [a-z0-9] 16-32 (hash-like) 98 %, random
// letters 8-11 (Conficker-like) 59 %, dictionary DGAs (two English words,
// Suppobox/Matsnu-like) 0.1 %: they evade every character statistic, a
// known limit of this method. Benign: 3 of 742 popular names (0.4 %:
// msftncsi.com twice, twitchcdn.net), so Detector asks for a burst of
// distinct NXDOMAIN names, most of them DGA-like, never one name.
const (
	wEntropy     = 0.4
	wConsonants  = 0.4
	wConsonants5 = 0.3
	wVowels      = 0.3
	wDigits      = 0.3
	wLong        = 0.2
	wBigrams     = 0.3 // rare letter pairs >= 30 %
	wBigrams50   = 0.4 // rare letter pairs >= 50 %
)

const (
	rEntropy = 1 << iota
	rConsonants
	rVowels
	rDigits
	rLong
	rBigrams
	rAll = 1<<iota - 1
)

var ruleNames = [...]string{"entropy", "consonant run", "few vowels", "digits mixed with letters", "long label", "rare letter pairs"}

// reasons[mask] joins the names of the rules in mask with "+", built once
// so Score returns it without allocating.
var reasons = func() (r [rAll + 1]string) {
	for m := 1; m <= rAll; m++ {
		var parts []string
		for i, n := range ruleNames {
			if m&(1<<i) != 0 {
				parts = append(parts, n)
			}
		}
		r[m] = strings.Join(parts, "+")
	}
	return r
}()

// secondLevel holds public suffixes of two labels under which names are
// registered (ICANN section only: private suffixes such as cloudfront.net
// or blogspot.com are deliberately absent, so a CDN's hashed host name is
// scored by the CDN's own label).
var secondLevel = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, s := range strings.Fields(`
		co.uk org.uk ac.uk gov.uk me.uk ltd.uk plc.uk net.uk nhs.uk sch.uk police.uk
		com.au net.au org.au edu.au gov.au asn.au id.au
		co.nz org.nz net.nz govt.nz ac.nz school.nz
		co.jp ne.jp or.jp ac.jp go.jp ed.jp gr.jp lg.jp
		co.kr or.kr ne.kr ac.kr go.kr re.kr
		com.br net.br org.br gov.br edu.br art.br
		com.cn net.cn org.cn gov.cn edu.cn ac.cn
		com.tw org.tw net.tw edu.tw gov.tw idv.tw
		com.hk org.hk net.hk edu.hk gov.hk
		com.sg org.sg net.sg edu.sg gov.sg
		com.my org.my net.my edu.my gov.my
		co.in net.in org.in gov.in ac.in edu.in firm.in gen.in ind.in
		co.za org.za net.za gov.za ac.za web.za
		com.mx org.mx net.mx gob.mx edu.mx
		com.ar org.ar net.ar gob.ar edu.ar
		com.tr org.tr net.tr gov.tr edu.tr bel.tr k12.tr
		com.ua org.ua net.ua gov.ua edu.ua in.ua kiev.ua
		com.pl net.pl org.pl gov.pl edu.pl waw.pl
		co.il org.il net.il ac.il gov.il muni.il
		com.sa org.sa net.sa gov.sa edu.sa
		com.eg org.eg net.eg gov.eg edu.eg
		com.pk org.pk net.pk gov.pk edu.pk
		com.ph org.ph net.ph gov.ph edu.ph
		com.vn net.vn org.vn gov.vn edu.vn
		com.co net.co org.co gov.co edu.co
		co.id or.id ac.id go.id web.id my.id
		co.th in.th ac.th go.th or.th
		com.pe org.pe net.pe gob.pe edu.pe
		com.ve org.ve net.ve gob.ve
		com.ng org.ng net.ng gov.ng edu.ng
		co.ke or.ke ac.ke go.ke
		com.bd org.bd net.bd gov.bd edu.bd
		com.np org.np net.np gov.np edu.np
		com.ru net.ru org.ru msk.ru spb.ru
		com.es org.es nom.es gob.es edu.es
		com.pt org.pt gov.pt edu.pt
		com.gr org.gr net.gr gov.gr edu.gr
		com.cy org.cy net.cy gov.cy ac.cy
		com.mt org.mt net.mt gov.mt edu.mt
		co.at or.at ac.at gv.at
		com.uy org.uy net.uy gub.uy edu.uy
		com.ec org.ec net.ec gob.ec edu.ec
		com.do org.do net.do gob.do edu.do
		com.gt org.gt net.gt gob.gt edu.gt
		com.bo org.bo net.bo gob.bo edu.bo
		com.py org.py net.py gov.py edu.py
		com.cu com.ni com.pa com.sv com.hn com.jm com.tt
		com.kw com.qa com.bh com.om com.lb com.jo
		co.ae org.ae net.ae gov.ae ac.ae
		com.kh com.mm com.lk com.af com.ly com.gh com.et
		co.tz co.ug co.zw co.zm co.bw co.mz
		com.fj com.pg com.sb
		co.cr co.ve
	`) {
		m[s] = struct{}{}
	}
	return m
}()

// Score rates how machine-generated name looks, 0..1, with the rules that
// fired joined by "+" (empty when none). name is a DNS name in text form
// ("www.example.co.uk", trailing dot and case ignored). Only the registered
// label is scored: "example" above; "d111111abcdef8.cloudfront.net" scores
// "cloudfront". A name that is only a suffix, an IDN label ("xn--") or has
// bytes outside letters, digits, '-' and '_' scores 0. Score does not
// allocate and is safe for concurrent use.
func Score(name []byte) (score float64, reason string) {
	var buf [256]byte
	n := len(name)
	for n > 0 && name[n-1] == '.' {
		n--
	}
	if n > len(buf) {
		name = name[n-len(buf) : n]
		n = len(buf)
	}
	for i := 0; i < n; i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	s := buf[:n]
	// labels from the right: [l1s, end) is the last label, [l2s, end) the last two
	end := len(s)
	l1 := lastDot(s, end) // index of the dot before the TLD, or -1
	if l1 < 0 {
		return 0, "" // a bare label: a TLD or a local name
	}
	sufStart := l1 + 1
	l2 := lastDot(s, l1)
	if _, ok := secondLevel[string(s[l2+1:end])]; ok {
		if l2 < 0 {
			return 0, "" // only a public suffix such as "co.uk"
		}
		sufStart = l2 + 1
	}
	regEnd := sufStart - 1
	regStart := lastDot(s, regEnd) + 1
	return scoreLabel(s[regStart:regEnd])
}

// lastDot returns the index of the last '.' in s[:end], or -1.
func lastDot(s []byte, end int) int {
	for i := end - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

func scoreLabel(l []byte) (float64, string) {
	n := len(l)
	if n == 0 || (n >= 4 && l[0] == 'x' && l[1] == 'n' && l[2] == '-' && l[3] == '-') {
		return 0, ""
	}
	var counts [38]uint8
	letters, vowels, digits, run, maxRun := 0, 0, 0, 0, 0
	pairs, rare, prev := 0, 0, -1
	for _, c := range l {
		var k int
		switch {
		case 'a' <= c && c <= 'z':
			k = int(c - 'a')
			letters++
			if prev >= 0 {
				pairs++
				if rareBigram[prev]&(1<<k) != 0 {
					rare++
				}
			}
			switch c {
			case 'a', 'e', 'i', 'o', 'u', 'y':
				vowels++
				run = 0
			default:
				run++
				maxRun = max(maxRun, run)
			}
		case '0' <= c && c <= '9':
			k = 26 + int(c-'0')
			digits++
			run = 0
		case c == '-':
			k = 36
			run = 0
		case c == '_':
			k = 37
			run = 0
		default:
			return 0, ""
		}
		if k >= 26 {
			prev = -1
		} else {
			prev = k
		}
		if counts[k] < 255 {
			counts[k]++
		}
	}
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(n)
			h -= p * math.Log2(p)
		}
	}
	var s float64
	var mask int
	if n > 12 && h > 3.5 {
		s, mask = s+wEntropy, mask|rEntropy
	}
	if maxRun >= 6 {
		s, mask = s+wConsonants, mask|rConsonants
	} else if maxRun >= 5 {
		s, mask = s+wConsonants5, mask|rConsonants
	}
	if n >= 8 && letters > 0 && float64(vowels) < 0.3*float64(letters) {
		s, mask = s+wVowels, mask|rVowels
	}
	if n >= 8 && digits >= 3 && letters >= 3 {
		if d := float64(digits) / float64(n); d >= 0.2 && d <= 0.8 {
			s, mask = s+wDigits, mask|rDigits
		}
	}
	if n > 24 {
		s, mask = s+wLong, mask|rLong
	}
	if n >= 8 && pairs >= 4 {
		if 2*rare >= pairs {
			s, mask = s+wBigrams50, mask|rBigrams
		} else if 10*rare >= 3*pairs {
			s, mask = s+wBigrams, mask|rBigrams
		}
	}
	return min(s, 1), reasons[mask]
}
