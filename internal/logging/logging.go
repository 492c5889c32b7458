// Package logging builds the JSON zap logger every component writes to stderr.
package logging

import (
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a JSON logger to stderr at the level named by TOLLGATE_LOG_LEVEL (default info).
// Repeated identical messages are sampled so an error storm cannot flood the logs.
func New() *zap.Logger {
	level := zapcore.InfoLevel
	if s := os.Getenv("TOLLGATE_LOG_LEVEL"); s != "" {
		_ = level.Set(s) // an unknown level keeps info
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	log, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return log
}
