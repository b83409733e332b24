//go:build race

package media

// Under the race detector the measurement tests average over fewer synthetic
// scenes: they are single-goroutine number crunching that the detector
// slows about tenfold without checking anything more.
func init() { vadSceneSeeds = 1 }
