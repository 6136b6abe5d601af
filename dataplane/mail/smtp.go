package mail

import "bytes"

// Commands waiting for a reply (SMTP and POP3).
const (
	cmdOther uint8 = iota
	cmdConnect
	cmdMail
	cmdRcpt
	cmdData
	cmdEndData
	cmdBDAT
	cmdRset
	cmdStartTLS
	cmdAuth
	cmdRetr
	cmdTop
	cmdMulti // a POP3 command answered by a multi-line list
)

// Envelope commands.
const (
	CommandDATA   = "DATA"
	CommandBDAT   = "BDAT"
	CommandRETR   = "RETR"
	CommandTOP    = "TOP"
	CommandFETCH  = "FETCH"
	CommandAPPEND = "APPEND"
)

func (p *Parser) smtpCommand(s *half, line []byte, long bool) {
	if p.authWait {
		p.authWait = false // a SASL response line, not a command
		return
	}
	if long {
		p.h.Anomaly(AnomLineTooLong)
		p.push(cmdOther, 0)
		return
	}
	verb, arg := word(line)
	switch {
	case is(verb, "MAIL"):
		p.resetEnvelope()
		p.from = string(path(arg, "FROM:"))
		p.push(cmdMail, 0)
	case is(verb, "RCPT"):
		if len(p.rcpt) >= MaxRcpt {
			p.h.Anomaly(AnomTooManyRcpt)
			p.push(cmdRcpt, -1)
			return
		}
		p.rcpt = append(p.rcpt, string(path(arg, "TO:")))
		p.rcptBad = append(p.rcptBad, false)
		p.push(cmdRcpt, int32(len(p.rcpt)-1))
	case is(verb, "DATA"):
		p.push(cmdData, 0)
		if p.begin(ToServer, CommandDATA) {
			s.startDot(endMsg)
		} else {
			s.startDot(endSkip)
		}
		s.awaitCont = true // until the 354 reply
	case is(verb, "BDAT"):
		sz, rest := word(arg)
		n, ok := parseUint(sz)
		last, _ := word(rest)
		if !ok {
			// The server cannot know how many bytes follow either.
			p.stop(AnomBadBDAT)
			return
		}
		isLast := is(last, "LAST")
		p.push(cmdBDAT, 0)
		end := endChunk
		if isLast {
			end = endMsg
		}
		if !p.begin(ToServer, CommandBDAT) {
			end = endSkip
		}
		if n == 0 {
			if end == endMsg {
				p.finish(true)
				p.resetEnvelope()
			}
			return
		}
		s.startCount(n, end)
	case is(verb, "RSET"):
		p.cancel()
		p.resetEnvelope()
		p.push(cmdRset, 0)
	case is(verb, "STARTTLS"):
		p.push(cmdStartTLS, 0)
	case is(verb, "AUTH"):
		p.push(cmdAuth, 0)
	default:
		p.push(cmdOther, 0)
	}
}

func (p *Parser) smtpReply(line []byte) {
	if len(line) < 3 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]) ||
		(len(line) > 3 && line[3] != ' ' && line[3] != '-') {
		p.stop(AnomBadReply)
		return
	}
	if len(line) > 3 && line[3] == '-' {
		return // continuation of a multi-line reply
	}
	code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	c, ok := p.peek()
	if !ok {
		if code != 421 { // a server may close with 421 at any time
			p.h.Anomaly(AnomOrphanReply)
		}
		return
	}
	if c.cmd == cmdAuth && code == 334 {
		p.authWait = true // the client answers the challenge next
		return
	}
	p.pop()
	bad := code >= 400
	switch c.cmd {
	case cmdMail:
		if bad {
			p.resetEnvelope()
		}
	case cmdRcpt:
		if bad && c.idx >= 0 && int(c.idx) < len(p.rcptBad) {
			p.rcptBad[c.idx] = true
		}
	case cmdData:
		s := &p.half[ToServer]
		s.awaitCont = false
		if code == 354 {
			if s.mode == mDot && s.end == endMsg {
				p.open()
			}
			return
		}
		if s.mode == mDot { // DATA rejected: no message
			if p.msg == msgOpen {
				p.h.Anomaly(AnomDataRejected)
			}
			if s.end != endSkip {
				p.cancel()
			}
			s.mode = mLine
		}
	case cmdBDAT:
		if bad && p.msg != msgNone && p.msgDir == ToServer {
			p.cancel()
			p.half[ToServer].end = endSkip
		}
	case cmdStartTLS:
		if code == 220 {
			p.encrypted()
		}
	}
}

func (p *Parser) resetEnvelope() {
	p.from = ""
	p.rcpt = p.rcpt[:0]
	p.rcptBad = p.rcptBad[:0]
}

func digit(c byte) bool { return '0' <= c && c <= '9' }

// path returns the address of "FROM:<a@b> SIZE=1" or "TO:<a@b>".
func path(arg []byte, prefix string) []byte {
	arg = bytes.TrimLeft(arg, " ")
	if !hasPrefixFold(arg, prefix) {
		return nil
	}
	arg = bytes.TrimLeft(arg[len(prefix):], " ")
	if len(arg) > 0 && arg[0] == '<' {
		if i := bytes.IndexByte(arg, '>'); i > 0 {
			return arg[1:i]
		}
		return arg[1:]
	}
	a, _ := word(arg)
	return a
}
