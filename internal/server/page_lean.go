//go:build lean

package server

import (
	"net/http"

	"github.com/healthbridge/healthbridge/internal/state"
)

// hasPage: the lean build has no status page (page.go): html/template's
// reflection keeps every exported method in the binary (1.9 MB). A
// browser gets /'s plain verbose answer.
const hasPage = false

func (h *Handler) servePage(http.ResponseWriter, *http.Request, *state.Snapshot, int) {}
