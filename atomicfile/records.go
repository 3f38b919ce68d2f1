package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// RecordExt ends the name of a record in a record directory: one file per
// object, <dir>/<id>.json, with no directory of its own, since a directory
// per object costs an inode more to make and to remove. Records used to be
// <dir>/<id>/<legacy name>; the functions below read both.
const RecordExt = ".json"

// RecordPath is the record of id in dir.
func RecordPath(dir, id string) string { return filepath.Join(dir, id+RecordExt) }

// recordID is the ID whose record file is named name; temp files (a
// leading dot) are none.
func recordID(name string) (string, bool) {
	if strings.HasPrefix(name, ".") {
		return "", false
	}
	return strings.CutSuffix(name, RecordExt)
}

// ListRecords returns the record of each object in dir, by ID, in either
// layout, changing nothing: for tools that read beside the daemon. Temp
// files are left out.
func ListRecords(dir, legacyName string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			p := filepath.Join(dir, name, legacyName)
			if _, err := os.Stat(p); err == nil {
				if _, flat := out[name]; !flat {
					out[name] = p
				}
			}
			continue
		}
		if id, ok := recordID(name); ok {
			out[id] = filepath.Join(dir, name)
		}
	}
	return out, nil
}

// PrepareRecords readies dir for loading at start-up and returns the IDs
// that have a record, and the directories <dir>/<id> that no record names
// (the caller removes them; they held only files of an object that never
// came to be or is gone). It deletes temp files a crash left and moves each
// record of the older layout to RecordPath with a rename, which is atomic:
// a crash leaves the record in one place or the other, and the next start
// moves it. A directory emptied by the move goes.
func PrepareRecords(dir, legacyName string) (ids, orphans []string, err error) {
	if err := RemoveTemps(dir); err != nil {
		return nil, nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read records: %w", err)
	}
	has := map[string]bool{}
	var dirs []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			dirs = append(dirs, name)
		} else if id, ok := recordID(name); ok {
			ids = append(ids, id)
			has[id] = true
		}
	}
	moved := false
	for _, id := range dirs {
		if !has[id] {
			ok, err := moveLegacyRecord(dir, id, legacyName)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				ids, has[id], moved = append(ids, id), true, true
			}
		}
		if !has[id] {
			orphans = append(orphans, id)
			continue
		}
		// Emptied by the move (or by a crash after it): the directory goes,
		// unless the object keeps files in it.
		if err := os.Remove(filepath.Join(dir, id)); err != nil && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			return nil, nil, fmt.Errorf("remove record directory of %s: %w", id, err)
		}
	}
	if moved {
		if err := SyncDir(dir); err != nil {
			return nil, nil, err
		}
	}
	return ids, orphans, nil
}

// moveLegacyRecord moves <dir>/<id>/<legacyName>, if there is one, to
// RecordPath.
func moveLegacyRecord(dir, id, legacyName string) (bool, error) {
	if err := RemoveTemps(filepath.Join(dir, id)); err != nil {
		return false, err
	}
	if err := os.Rename(filepath.Join(dir, id, legacyName), RecordPath(dir, id)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("move record of %s: %w", id, err)
	}
	return true, nil
}
