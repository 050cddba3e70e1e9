package probe

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
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

// SendFlags registers the one-shot forms' payload flags on fs: --send
// (text, Go escapes read by Unescape) and --send-hex (hexadecimal digits,
// two a byte), not both. The returned function gives the payload after
// parsing ("" when neither was given), or an error naming the flag.
func SendFlags(fs *pflag.FlagSet, what string) func() (string, error) {
	send := fs.String("send", "", what+" to send; Go escapes are read: \\r\\n, \\t, \\xff (one byte), \\u00e9 (UTF-8)")
	sendHex := fs.String("send-hex", "", what+" to send, as hexadecimal digits (two per byte)")
	return func() (string, error) {
		if *sendHex != "" {
			if *send != "" {
				return "", errors.New("--send-hex: give --send or --send-hex, not both")
			}
			b, err := hex.DecodeString(*sendHex)
			if err != nil {
				return "", fmt.Errorf("--send-hex: not hexadecimal bytes: %v", err)
			}
			return string(b), nil
		}
		payload, err := Unescape(*send)
		if err != nil {
			return "", fmt.Errorf("--send: %v", err)
		}
		return payload, nil
	}
}
