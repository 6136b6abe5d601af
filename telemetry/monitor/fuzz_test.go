package monitor

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/openutm/utm/telemetry/alert"
)

// FuzzDecodeAlert feeds arbitrary message bodies to the monitor's decoder:
// it never panics, and what it accepts is a valid event of the subject's
// box that re-encodes to the model's fields only.
func FuzzDecodeAlert(f *testing.F) {
	f.Add("box-1", []byte(`{"timestamp":"2026-11-23T09:00:00.000000+0000","event_type":"alert","alert":{"action":"blocked","gid":1,"signature_id":1,"rev":1,"signature":"s","category":"","severity":1},"stars":3,"id":"box-1-a-1","box_id":"box-1"}`))
	f.Add("box-1", []byte(`{"timestamp":"2026-11-23T09:00:00Z","event_type":"fileinfo","fileinfo":{"size":1,"stored":false,"scanned":true},"id":"x","payload":"AAAA"}`))
	f.Add("b", []byte(`{"event_type":"alert","stars":9}`))
	f.Add("", []byte(`null`))
	f.Fuzz(func(t *testing.T, box string, data []byte) {
		ev, _, why := decodeAlert(box, data)
		if ev == nil {
			if why == "" {
				t.Fatal("rejected without a reason")
			}
			return
		}
		if ev.BoxID != box || ev.ID == "" || ev.Validate() != nil {
			t.Fatalf("accepted a bad event: %+v", ev)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var back alert.Event
		if err := dec.Decode(&back); err != nil {
			t.Fatalf("stored form is not the model: %v", err)
		}
	})
}
