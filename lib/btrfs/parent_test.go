package btrfs

import "testing"

func TestPickParent(t *testing.T) {
	type c = parentCandidate
	tests := []struct {
		name     string
		origin   uint64
		ctransid uint64
		cands    []c
		want     int
	}{
		{"no clone sources", 300, 50, nil, -1},
		{"the origin itself", 300, 50, []c{{id: 301, ctransid: 49, origin: 300}, {id: 300, ctransid: 50}}, 1},
		{"the origin before a nearer sibling", 300, 50, []c{{id: 301, ctransid: 50, origin: 300}, {id: 300, ctransid: 10, origin: 7}}, 1},
		{"one sibling", 300, 50, []c{{id: 301, ctransid: 20, origin: 300}}, 0},
		{"nearest ctransid below", 300, 50, []c{{id: 301, ctransid: 20, origin: 300}, {id: 302, ctransid: 45, origin: 300}, {id: 303, ctransid: 30, origin: 300}}, 1},
		{"nearest ctransid above", 300, 50, []c{{id: 301, ctransid: 40, origin: 300}, {id: 302, ctransid: 52, origin: 300}}, 1},
		{"first of equals", 300, 50, []c{{id: 305, ctransid: 45, origin: 300}, {id: 301, ctransid: 55, origin: 300}}, 0},
		{"unrelated only", 300, 50, []c{{id: 400, ctransid: 50, origin: 399}, {id: 401, ctransid: 50}}, -1},
		{"unrelated skipped", 300, 50, []c{{id: 400, ctransid: 50, origin: 399}, {id: 301, ctransid: 1, origin: 300}}, 1},
		{"no origin found", 300, 50, []c{{id: 401, ctransid: 50, origin: 0}}, -1},
		{"snapshot of a snapshot is no sibling", 300, 50, []c{{id: 302, ctransid: 50, origin: 301}}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickParent(tt.origin, tt.ctransid, tt.cands); got != tt.want {
				t.Fatalf("pickParent = %d, want %d", got, tt.want)
			}
		})
	}
}
