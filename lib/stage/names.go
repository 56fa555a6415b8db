package stage

import "strings"

// Stage names, as a record's Encoding and an object key list them
// (lib/objstore/objkey spells them in keys).
const (
	Zstd = "zstd"
	Age  = "age"
	// filterPrefix starts a filter stage's name: "f-<name>".
	filterPrefix = "f-"
)

// FilterStage is the stage name of a filter.
func FilterStage(name string) string { return filterPrefix + name }

// IsFilterStage reports whether a stage is a user filter.
func IsFilterStage(stage string) bool { return strings.HasPrefix(stage, filterPrefix) }

// FilterName is the name of a filter stage ("" for other stages).
func FilterName(stage string) string {
	if !IsFilterStage(stage) {
		return ""
	}
	return stage[len(filterPrefix):]
}

// ValidFilterName reports whether name may name a filter stage: 1 to 32
// bytes of a-z, 0-9 and '-'.
func ValidFilterName(name string) bool {
	if name == "" || len(name) > 32 {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Valid reports whether s names a stage: zstd, age or a filter.
func Valid(s string) bool { return s == Zstd || s == Age || ValidFilterName(FilterName(s)) }
