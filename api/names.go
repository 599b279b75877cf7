package api

import "regexp"

var nameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]*$`)

// ValidateName checks an object name: a letter, then letters, digits or '-',
// 1 to 63 characters. field names the JSON field in the error.
func ValidateName(field, name string) error {
	switch {
	case name == "":
		return FieldError(field, "is required")
	case len(name) > 63:
		return FieldError(field, "%d characters, at most 63 allowed", len(name))
	case !nameRE.MatchString(name):
		return FieldError(field, "%q must start with a letter and hold only letters, digits and '-'", name)
	}
	return nil
}
