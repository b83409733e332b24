package pocketsphinx

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// validateModel checks the files PocketSphinx will open, so that a wrong
// path fails here with the file named. It also checks the headers of the
// binary acoustic model files: pocketsphinx 0.8 does not fail gracefully
// on those; given a foreign or corrupt mdef, means, variances,
// transition_matrices or sendump it calls exit() or crashes the process.
// (A truncated file with a valid header can still crash it; the model
// directory must hold an intact model.)
func validateModel(cfg Config) error {
	st, err := os.Stat(cfg.ModelDir)
	if err != nil {
		return fmt.Errorf("pocketsphinx: acoustic model directory (ModelDir): %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("pocketsphinx: acoustic model directory (ModelDir) %s is not a directory", cfg.ModelDir)
	}
	am := func(name string) string { return filepath.Join(cfg.ModelDir, name) }
	if err := checkFile("acoustic model file", am("mdef"), mdefHeader); err != nil {
		return err
	}
	for _, name := range []string{"means", "variances", "transition_matrices"} {
		if err := checkFile("acoustic model file", am(name), s3Header); err != nil {
			return err
		}
	}
	if err := checkFile("acoustic model file", am("noisedict"), nil); err != nil {
		return err
	}
	if _, err := os.Stat(am("sendump")); err == nil {
		if err := checkFile("acoustic model file", am("sendump"), sendumpHeader); err != nil {
			return err
		}
	} else if err := checkFile("acoustic model file", am("mixture_weights"), s3Header); err != nil {
		return fmt.Errorf("pocketsphinx: acoustic model directory (ModelDir) %s has no usable sendump or mixture_weights: %w", cfg.ModelDir, err)
	}
	if err := checkFile("language model (LM)", cfg.LM, nil); err != nil {
		return err
	}
	return checkFile("dictionary (Dict)", cfg.Dict, nil)
}

// checkFile verifies that path is a non-empty regular file we can read and,
// if header is not nil, that its first bytes pass header.
func checkFile(what, path string, header func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pocketsphinx: %s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("pocketsphinx: %s: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("pocketsphinx: %s %s is not a regular file", what, path)
	}
	if st.Size() == 0 {
		return fmt.Errorf("pocketsphinx: %s %s is empty", what, path)
	}
	buf := make([]byte, 4096)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("pocketsphinx: %s: %w", what, err)
	}
	if header != nil {
		if err := header(buf[:n]); err != nil {
			return fmt.Errorf("pocketsphinx: %s %s: %w", what, path, err)
		}
	}
	return nil
}

// mdefHeader accepts a binary ("BMDF") or text ("0.3") model definition.
func mdefHeader(b []byte) error {
	if bytes.HasPrefix(b, []byte("BMDF")) || bytes.HasPrefix(b, []byte("FDMB")) || bytes.HasPrefix(b, []byte("0.3")) {
		return nil
	}
	return fmt.Errorf("not a model definition (no BMDF or 0.3 header)")
}

// s3Header accepts a Sphinx-3 binary file: "s3\n", "endhdr\n", then the
// byte-order magic 0x11223344 in either byte order.
func s3Header(b []byte) error {
	if !bytes.HasPrefix(b, []byte("s3\n")) {
		return fmt.Errorf("not a Sphinx-3 binary file (no s3 header)")
	}
	i := bytes.Index(b, []byte("endhdr\n"))
	if i < 0 || len(b) < i+7+4 {
		return fmt.Errorf("no endhdr in the first %d bytes of the Sphinx-3 header", len(b))
	}
	m := b[i+7 : i+11]
	if binary.LittleEndian.Uint32(m) != 0x11223344 && binary.BigEndian.Uint32(m) != 0x11223344 {
		return fmt.Errorf("bad byte-order magic after the Sphinx-3 header")
	}
	return nil
}

// sendumpHeader accepts a sendump file: a length-prefixed "BEGIN FILE
// FORMAT DESCRIPTION" string.
func sendumpHeader(b []byte) error {
	if len(b) >= 4 && bytes.HasPrefix(b[4:], []byte("BEGIN FILE FORMAT DESCRIPTION")) {
		return nil
	}
	return fmt.Errorf("not a sendump file (no BEGIN FILE FORMAT DESCRIPTION)")
}
