package controllers

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxEventNote is the most bytes the API server accepts in an Event's note
// (events.k8s.io/v1; NoteLengthLimit of Kubernetes' event validation). A
// longer note is refused, and the Event lost: a message that quotes
// names, emails and ScriptLock's answers can be longer.
const maxEventNote = 1024

// truncatedMarker ends a note that was cut to fit.
const truncatedMarker = "… [truncated]"

// eventNote formats an Event's note and cuts it to maxEventNote bytes on a
// UTF-8 boundary, ending it with truncatedMarker, so that no Event is
// refused for its length. Bytes that are not UTF-8 become U+FFFD first, as
// JSON would make them on the wire, so the length checked is the length
// sent.
func eventNote(format string, args ...any) string {
	note := strings.ToValidUTF8(fmt.Sprintf(format, args...), "\uFFFD")
	if len(note) <= maxEventNote {
		return note
	}
	cut := maxEventNote - len(truncatedMarker)
	for cut > 0 && !utf8.RuneStart(note[cut]) {
		cut--
	}
	return note[:cut] + truncatedMarker
}
