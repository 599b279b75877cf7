package api

import "strconv"

// Bounds on the free-form fields of request bodies. Each object is stored
// with its fields in one etcd write, which takes at most 1.5 MiB: a body
// within the API's 1 MiB limit could otherwise be refused by the store.
const (
	// MaxMapEntries bounds the entries of a metadata or environment map.
	MaxMapEntries = 256
	// MaxMapKey bounds a map key's length in bytes.
	MaxMapKey = 256
	// MaxMapBytes bounds a map's keys and values together, in bytes.
	MaxMapBytes = 64 << 10
	// MaxTags bounds an object's tags; MaxTag a tag's length.
	MaxTags = 64
	MaxTag  = 256
)

// ValidateStringMap checks a metadata or environment map against
// MaxMapEntries, MaxMapKey and MaxMapBytes; field names the JSON field.
func ValidateStringMap(field string, m map[string]string) error {
	if len(m) > MaxMapEntries {
		return FieldError(field, "%d entries, at most %d allowed", len(m), MaxMapEntries)
	}
	n := 0
	for k, v := range m {
		if k == "" || len(k) > MaxMapKey {
			return FieldError(field, "key %.40q: want 1-%d bytes, got %d", k, MaxMapKey, len(k))
		}
		n += len(k) + len(v)
	}
	if n > MaxMapBytes {
		return FieldError(field, "%d bytes of keys and values, at most %d allowed", n, MaxMapBytes)
	}
	return nil
}

// ValidateTags checks a list of tags against MaxTags and MaxTag; field
// names the JSON field.
func ValidateTags(field string, tags []string) error {
	if len(tags) > MaxTags {
		return FieldError(field, "%d tags, at most %d allowed", len(tags), MaxTags)
	}
	for i, t := range tags {
		if t == "" || len(t) > MaxTag {
			return FieldError(field+"["+strconv.Itoa(i)+"]", "must be 1-%d characters", MaxTag)
		}
	}
	return nil
}
