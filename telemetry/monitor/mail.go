package monitor

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/openutm/utm/telemetry/notify"
	bolt "go.etcd.io/bbolt"
)

// Mails survive restarts and relay outages. An alert the mailer wants (★★★,
// box offline) enters the store's outbox in the same transaction that
// stores it, before the box's message is acked; mailLoop sends the outbox
// oldest first and removes an entry only once the relay took the mail, or
// the mailer decided against it (deduplicated, over the box's hourly
// budget, nobody to mail), or the relay refused it for good (a 5xx
// answer: a wrong address must not hold up the mails behind it; logged
// and counted as lost). A failed send is retried (1 s, 5 s, 25 s, then
// every mailRetryMax) for mailMaxAge after the alert was stored; a monitor
// stopped meanwhile resumes at its next start. After a restart the dedupe
// memory is empty: a mail in flight at the stop can be sent twice, never
// lost.

// Mail retry policy.
var (
	mailRetryWaits = []time.Duration{time.Second, 5 * time.Second, 25 * time.Second}
	mailRetryMax   = time.Minute
	mailMaxAge     = 24 * time.Hour
)

// kickMail tells mailLoop the outbox grew.
func (m *Monitor) kickMail() {
	select {
	case m.mailKick <- struct{}{}:
	default:
	}
}

// mailLoop sends what the outbox holds until the monitor stops.
func (m *Monitor) mailLoop() {
	defer m.wg.Done()
	for {
		seqs, err := m.st.outbox(64)
		if err != nil {
			m.log.Error("cannot read the mail outbox; retrying in a minute (check the --data disk)", "err", err)
		}
		if len(seqs) == 0 || err != nil {
			wait := mailRetryMax
			if err == nil {
				wait = time.Hour // until kicked
			}
			select {
			case <-m.stop:
				return
			case <-m.mailKick:
			case <-time.After(wait):
			}
			continue
		}
		for _, seq := range seqs {
			if !m.mailOne(seq) {
				return // stopping
			}
		}
	}
}

// mailOne composes and sends the mail of outbox entry seq, retrying until
// it is sent, decided against, or too old; it reports false when the
// monitor stops first (the entry stays for the next start).
func (m *Monitor) mailOne(seq uint64) bool {
	rec, ok := m.st.get(seq)
	if !ok { // swept by retention
		m.st.unqueueMail(seq)
		return true
	}
	msg, d := m.mailer.Compose(rec.Event, seq)
	if d != notify.Queued {
		m.log.Info("alert not mailed", "seq", seq, "box", rec.Event.BoxID, "why", d.String())
		m.st.unqueueMail(seq)
		return true
	}
	for try := 0; ; try++ {
		err := m.mailer.Deliver(msg)
		if err == nil {
			m.st.unqueueMail(seq)
			return true
		}
		if errors.Is(err, notify.ErrRefused) || m.now().Sub(rec.Received) > mailMaxAge {
			m.mailer.Lost(msg, err)
			m.st.unqueueMail(seq)
			return true
		}
		wait := mailRetryMax
		if try < len(mailRetryWaits) {
			wait = mailRetryWaits[try]
		}
		m.log.Warn("mail not sent; it stays in the outbox and is retried (check --smtp)", "seq", seq, "to", msg.To, "err", err, "retry_in", wait.String())
		select {
		case <-m.stop:
			return false
		case <-time.After(wait):
		}
	}
}

// outbox returns the first n seqs waiting to be mailed, oldest first.
func (s *store) outbox(n int) ([]uint64, error) {
	var out []uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, _ := c.First(); k != nil && len(out) < n; k, _ = c.Next() {
			if len(k) == 8 {
				out = append(out, binary.BigEndian.Uint64(k))
			}
		}
		return nil
	})
	return out, err
}

// unqueueMail removes seq from the outbox; an error is logged by the
// caller's next read (the entry is then tried again, at worst mailed twice).
func (s *store) unqueueMail(seq uint64) {
	k := seqKey(seq)
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOutbox).Delete(k[:]) })
}
