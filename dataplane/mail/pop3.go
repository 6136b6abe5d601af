package mail

func (p *Parser) popCommand(line []byte, long bool) {
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
	arg, _ = word(arg)
	switch {
	case is(verb, "RETR"):
		p.push(cmdRetr, 0)
	case is(verb, "TOP"):
		p.push(cmdTop, 0)
	case is(verb, "LIST"), is(verb, "UIDL"), is(verb, "AUTH"):
		if len(arg) == 0 { // the whole list (AUTH: the mechanisms)
			p.push(cmdMulti, 0)
		} else if is(verb, "AUTH") {
			p.push(cmdAuth, 0)
		} else {
			p.push(cmdOther, 0)
		}
	case is(verb, "CAPA"):
		p.push(cmdMulti, 0)
	case is(verb, "STLS"):
		p.push(cmdStartTLS, 0)
	default:
		p.push(cmdOther, 0)
	}
}

func (p *Parser) popReply(line []byte) {
	ok := hasPrefixFold(line, "+OK")
	if !ok && !hasPrefixFold(line, "-ERR") && (len(line) == 0 || line[0] != '+') {
		p.stop(AnomBadReply)
		return
	}
	c, have := p.peek()
	if !have {
		p.h.Anomaly(AnomOrphanReply)
		return
	}
	if !ok && line[0] == '+' { // "+ challenge"
		if c.cmd == cmdAuth {
			p.authWait = true
		} else {
			p.stop(AnomBadReply)
		}
		return
	}
	p.pop()
	if !ok {
		return
	}
	s := &p.half[ToClient]
	switch c.cmd {
	case cmdRetr, cmdTop:
		cmd := CommandRETR
		if c.cmd == cmdTop {
			cmd = CommandTOP
		}
		if p.begin(ToClient, cmd) {
			p.open()
			s.startDot(endMsg)
		} else {
			s.startDot(endSkip)
		}
	case cmdMulti:
		s.startDot(endSkip)
	case cmdStartTLS:
		p.encrypted()
	}
}
