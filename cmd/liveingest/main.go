// Command liveingest is the one binary of liveingest: `dev` runs everything in
// one process; `edge`, `origin` and `functions` are the roles of a real
// deployment against Redis and S3.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/alecthomas/kong"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

// CLI is the command line. Every flag can also be given as LIVEINGEST_<FLAG>
// and, below both, in the YAML file named by --config.
type CLI struct {
	Config    kong.ConfigFlag `help:"YAML configuration file (keys are flag names); flags and LIVEINGEST_* variables override it."`
	LogLevel  string          `help:"Log level: debug, info, warn or error." default:"info" enum:"debug,info,warn,error"`
	LogFormat string          `help:"Log format: auto (text when stderr is a terminal, else json), json or text." default:"auto" enum:"auto,json,text"`

	Dev       DevCmd       `cmd:"" help:"Run edge, origin and functions in one process with embedded storage and in-memory coordination."`
	Edge      EdgeCmd      `cmd:"" help:"Run an ingest edge against Redis and S3."`
	Origin    OriginCmd    `cmd:"" help:"Run the origin (playback, API, UI) against Redis and S3."`
	Functions FunctionsCmd `cmd:"" help:"Run the function worker against Redis and S3."`
	Slots     SlotsCmd     `cmd:"" help:"Manage slots through the API (list, get, create, update, clone, delete, rotate-key, live)."`
	Version   VersionCmd   `cmd:"" help:"Print the version."`
}

// env is what a command run needs from its surroundings; tests give their own.
type env struct {
	stdout io.Writer
	logger *slog.Logger
}

// defaultGOGC is the garbage collector's target when the GOGC variable is
// not set. An edge's heap is mostly the pointer-free bytes of the segments
// being filled, which cost the collector almost nothing to mark, while
// every stream's garbage (a protocol's read buffers) is proportional to its
// bitrate: collecting at 50 % growth instead of Go's 100 % kept the heap —
// and RSS per stream — about a quarter smaller for under 1 % of CPU in
// `make bench` (docs/performance.md). GOMEMLIMIT is left to the operator:
// set it near the container's memory so the collector works harder only
// when memory is really short.
const defaultGOGC = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "liveingest:", err)
		os.Exit(1)
	}
}

// run parses args, validates the chosen command's configuration and runs it
// until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cli CLI
	kctx, err := parse(&cli, args, stdout, stderr)
	if err != nil || kctx == nil {
		return err
	}
	logger := newLogger(stderr, cli.LogLevel, cli.LogFormat)
	kctx.BindTo(ctx, (*context.Context)(nil))
	return kctx.Run(env{stdout: stdout, logger: logger})
}

// parse fills cli from args, environment and config file. It returns a nil
// context when kong handled the call itself (--help).
func parse(cli *CLI, args []string, stdout, stderr io.Writer) (*kong.Context, error) {
	exited := false
	parser, err := kong.New(cli,
		kong.Name("liveingest"),
		kong.Description("Live-video edge ingest and origin storage."),
		kong.DefaultEnvars("LIVEINGEST"),
		kong.Configuration(yamlLoader),
		kong.Writers(stdout, stderr),
		kong.Exit(func(int) { exited = true }),
	)
	if err != nil {
		return nil, err
	}
	kctx, err := parser.Parse(args)
	if exited {
		return nil, nil
	}
	if err != nil {
		// Kong has run the command's Validate: the error names the flag.
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return kctx, nil
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints the version.
func (VersionCmd) Run(e env) error {
	_, err := fmt.Fprintln(e.stdout, "liveingest", buildVersion())
	return err
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
