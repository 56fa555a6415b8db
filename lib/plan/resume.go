package plan

import "github.com/buttersink/buttersink/lib/snapshot"

// resumeSends gives each send step the resume point of the partial
// receive of its very stream: at the same path, received as the stream
// the kernel will send (the snapshot's effective UUID and its ctransid,
// the parent's likewise for an incremental send, none for a full one).
// Anything else (another parent, a newer snapshot at the same name) is a
// different stream, sent whole; so is one whose digest turns out to
// differ, which bssend finds out.
func resumeSends(steps []Step, partials []snapshot.Snapshot) {
	if len(partials) == 0 {
		return
	}
	byPath := make(map[string]*snapshot.Snapshot, len(partials))
	for i := range partials {
		if p := &partials[i]; p.Resume != nil && !p.ReadOnly && !p.IsObject() {
			byPath[p.Path] = p
		}
	}
	for i := range steps {
		st := &steps[i]
		p := byPath[st.Snapshot.Path]
		if st.Op != OpSend || p == nil || !sameStream(st, p.Resume) {
			continue
		}
		st.Resume = &Resume{Offset: p.Resume.Offset, Digest: p.Resume.Digest}
	}
}

func sameStream(st *Step, r *snapshot.Resume) bool {
	if r.UUID != st.Snapshot.EffectiveUUID() || r.CTransID != st.Snapshot.CTransID {
		return false
	}
	if st.Parent == nil {
		return r.ParentUUID.IsZero() && r.ParentCTransID == 0
	}
	return r.ParentUUID == st.Parent.EffectiveUUID() && r.ParentCTransID == st.Parent.CTransID
}
