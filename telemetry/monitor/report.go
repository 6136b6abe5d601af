package monitor

import "net/http"

// Report is a box's monthly report.
type Report struct{}

func (m *Monitor) handleReport(w http.ResponseWriter, r *http.Request, s session) {
	http.Error(w, "not yet", http.StatusNotImplemented)
}

func (m *Monitor) handleReportPDF(w http.ResponseWriter, r *http.Request, s session) {
	http.Error(w, "not yet", http.StatusNotImplemented)
}
