package streaming

import (
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

// sessionTTL matches the library's token lifetime: a URL unused for this
// long is refused.
const sessionTTL = time.Minute

// sessions remembers which request each handed-out URL stands for. The
// library keeps its own single-use cache but does not expose it, and the
// v5 WebSocket sessions it cannot serve need the request; so every
// session URL passes through here first, used once, whatever the
// protocol.
type sessions struct {
	mu      sync.Mutex
	byToken map[string]session
}

type session struct {
	req     any
	expires time.Time
}

func newSessions() *sessions { return &sessions{byToken: map[string]session{}} }

// add records the request behind a URL the library returned.
func (s *sessions) add(rawURL string, req any) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok, sess := range s.byToken {
		if now.After(sess.expires) {
			delete(s.byToken, tok)
		}
	}
	s.byToken[path.Base(u.Path)] = session{req: req, expires: now.Add(sessionTTL)}
}

// take returns the request for a session path and forgets it.
func (s *sessions) take(r *http.Request) (any, bool) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 2 {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byToken[parts[1]]
	delete(s.byToken, parts[1])
	if !ok || time.Now().After(sess.expires) {
		return nil, false
	}
	return sess.req, true
}
