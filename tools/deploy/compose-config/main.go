// compose-config loads a Compose file the way `docker compose config` does (the Compose
// Specification's reference loader, compose-go: JSON-schema validation, interpolation,
// normalization and the consistency checks such as depends_on on an undefined service) and
// prints the resolved project as JSON on stdout, for the policy checks that follow.
//
// Usage: compose-config [-project-directory DIR] FILE...
// Exit status 0 when the project is valid, 1 otherwise (the reason on stderr).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	projectDir := flag.String("project-directory", "", "project directory (default: the first file's directory)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: compose-config [-project-directory DIR] FILE...")
		os.Exit(2)
	}
	opts := []cli.ProjectOptionsFn{
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	}
	if *projectDir != "" {
		opts = append([]cli.ProjectOptionsFn{cli.WithWorkingDirectory(*projectDir)}, opts...)
	}
	options, err := cli.NewProjectOptions(flag.Args(), opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}
