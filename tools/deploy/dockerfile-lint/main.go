// dockerfile-lint runs BuildKit's Dockerfile checks (what `docker build --check` reports)
// without a Docker engine or registry: base images resolve to an empty linux config.
//
// Usage: dockerfile-lint [-build-arg NAME=VALUE ...] Dockerfile
// Exit status 0 when there is no warning and no error, 1 otherwise.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
)

// offlineResolver answers every base image with a minimal linux/amd64 config, so the
// checks run without pulling anything.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	config := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		},
	}
	dt, err := json.Marshal(config)
	if err != nil {
		return "", "", nil, err
	}
	return ref, digest.FromBytes(dt), dt, nil
}

type buildArgs map[string]string

func (b buildArgs) String() string { return fmt.Sprint(map[string]string(b)) }

func (b buildArgs) Set(value string) error {
	name, val, ok := strings.Cut(value, "=")
	if !ok || name == "" {
		return fmt.Errorf("expected NAME=VALUE, got %q", value)
	}
	b[name] = val
	return nil
}

func main() {
	args := buildArgs{}
	flag.Var(args, "build-arg", "build argument NAME=VALUE (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-lint [-build-arg NAME=VALUE ...] Dockerfile")
		os.Exit(2)
	}
	path := flag.Arg(0)
	dt, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sourceMap := llb.NewSourceMap(nil, path, "Dockerfile", dt)
	sourceMap.Definition = &llb.Definition{}
	results, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{BuildArgs: args},
		SourceMap:    sourceMap,
		MetaResolver: offlineResolver{},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
		os.Exit(1)
	}
	if err := results.PrintTo(os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if results.Error != nil {
		results.PrintErrorTo(os.Stdout, nil)
		os.Exit(1)
	}
	if len(results.Warnings) > 0 {
		fmt.Printf("%s: %d warning(s)\n", path, len(results.Warnings))
		os.Exit(1)
	}
	fmt.Printf("%s: no warnings\n", path)
}
