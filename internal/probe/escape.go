package probe

import (
	"strconv"
	"strings"
)

// Unescape reads Go escapes in a command-line payload ("ping\n"): \xNN
// and octal \NNN are one byte each (so "\xff" is the byte 0xff, as in a
// Go string literal), \uNNNN and \UNNNNNNNN a character in UTF-8; other
// bytes are kept as they are; \" and \' are quotes.
func Unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for s != "" {
		if len(s) >= 2 && s[0] == '\\' && (s[1] == '"' || s[1] == '\'') {
			b.WriteByte(s[1]) // both quotes may be escaped, as in either literal
			s = s[2:]
			continue
		}
		r, multibyte, tail, err := strconv.UnquoteChar(s, 0)
		if err != nil {
			return "", err
		}
		if multibyte {
			b.WriteRune(r) // \u00ff, or a literal character
		} else {
			b.WriteByte(byte(r)) // \xff is one byte, not U+00FF
		}
		s = tail
	}
	return b.String(), nil
}
