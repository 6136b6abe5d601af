package monitor

import "time"

// Sweep deletes the alerts older than Config.Retention (by the time they
// are filed under: the event's, see Filter) and returns how many. The
// monitor sweeps at start and daily; an alert a box re-sends after its
// sweep is stored again and swept again.
func (m *Monitor) Sweep() (int, error) {
	cutoff := m.now().Add(-m.cfg.Retention)
	n, err := m.st.sweep(cutoff)
	if err != nil {
		m.log.Error("retention sweep failed; will retry tomorrow (check free disk space for --data)", "deleted", n, "err", err)
		return n, err
	}
	if n > 0 {
		m.log.Info("retention sweep", "deleted", n, "older_than", cutoff.UTC().Format(time.RFC3339))
	}
	return n, nil
}

func (m *Monitor) retentionLoop() {
	defer m.wg.Done()
	m.Sweep()
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Sweep()
		}
	}
}

// Query returns the stored records f selects, newest first, skipping
// offset, at most limit, and whether more follow.
func (m *Monitor) Query(f Filter, offset, limit int) ([]Record, bool, error) {
	return m.st.query(f, offset, limit)
}

// Histogram counts the records f selects in n equal bins over
// [f.From, f.To), by stars.
func (m *Monitor) Histogram(f Filter, n int) ([]Bin, error) { return m.st.histogram(f, n) }

// Record returns the stored record seq.
func (m *Monitor) Record(seq uint64) (Record, bool) { return m.st.get(seq) }
