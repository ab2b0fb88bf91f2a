package peers

import (
	"context"
	"log/slog"
	"strings"
)

// logWriter turns memberlist's log lines ("[DEBUG] memberlist: ...", written through the
// *log.Logger in its Config) into slog records at the matching level.
type logWriter struct {
	log *slog.Logger
	// seen, when set, is shown every message (the keyring records refused senders).
	seen func(msg string)
}

// memberlistLevels maps memberlist's level prefixes to slog levels.
var memberlistLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[TRACE]", slog.LevelDebug},
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

// Write logs one memberlist line. It never fails.
func (w *logWriter) Write(p []byte) (int, error) {
	level, msg := parseMemberlistLine(string(p))
	if w.seen != nil && level >= slog.LevelWarn {
		w.seen(msg)
	}
	if msg != "" && w.log.Enabled(context.Background(), level) {
		w.log.Log(context.Background(), level, msg, "src", "memberlist")
	}
	return len(p), nil
}

// parseMemberlistLine splits a memberlist log line into its level and message. Lines
// without a known prefix are logged at Info; errors from this node's own closed sockets
// (during Shutdown) at Debug.
func parseMemberlistLine(line string) (slog.Level, string) {
	line = strings.TrimSpace(line)
	level := slog.LevelInfo
	for _, l := range memberlistLevels {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			level, line = l.level, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if level > slog.LevelDebug && strings.Contains(line, "use of closed network connection") {
		// Sends racing this node's own Shutdown: expected, not worth a warning.
		level = slog.LevelDebug
	}
	return level, line
}
