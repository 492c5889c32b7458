package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tollgate-dev/tollgate/ingest"
	"github.com/tollgate-dev/tollgate/internal/config"
	"github.com/tollgate-dev/tollgate/internal/kafka"
	"github.com/tollgate-dev/tollgate/schemas"
)

func newEraseCmd() *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "erase --config FILE --user ID",
		Short: "Erase a user: block every later event, delete their audit rows, list who had their data",
		Long: `Records the user's erasure in the raw topic (as POST /v1/erase does): every event of the
user processed after it is blocked with reason "erased", and the sinks drop what is still queued.
Then deletes the user's rows from the audit tables and prints the destinations that had received
data about the user before (read from the audit trail before the deletion).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(user) == "" {
				return usageError{fmt.Errorf("--user ID is required (the user_id or anonymous_id)")}
			}
			a, db, err := loadAudit(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			defer db.Close()
			recipients, err := db.UserRecipients(ctx, user)
			if err != nil {
				return err
			}
			if err := ensureTopics(ctx, a); err != nil {
				return err
			}
			if err := recordErasure(ctx, a, user); err != nil {
				return err
			}
			if err := db.EraseUser(ctx, user); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "erased %s: later events are blocked; audit rows deleted from %s\n", user, db.Database)
			if len(recipients) == 0 {
				fmt.Fprintln(out, "destinations that had received data about the user: none")
			} else {
				fmt.Fprintf(out, "destinations that had received data about the user: %s\n", strings.Join(recipients, ", "))
			}
			return nil
		},
	}
	configFlag(cmd)
	cmd.Flags().StringVar(&user, "user", "", "the user's user_id or anonymous_id (required)")
	return cmd
}

// recordErasure writes the erasure to the raw topic and waits for Kafka's acknowledgement.
func recordErasure(ctx context.Context, a *app, user string) error {
	cl, err := kafka.NewClient(a.cfg, a.log)
	if err != nil {
		return err
	}
	defer cl.Close()
	u := &schemas.ConsentUpdate{UpdateID: uuid.NewString(), UserKey: user, Erased: true, TimestampMs: time.Now().UnixMilli()}
	rec, err := ingest.ConsentRecord(a.cfg.Topic(config.TopicRaw), u)
	if err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("record erasure in %s: %w", rec.Topic, err)
	}
	return nil
}
