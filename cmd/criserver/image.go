package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/criserver/criserver/cri"
)

// runImage is `criserver image SUBCOMMAND`.
func runImage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "import" {
		return fail(stderr, usageError{errors.New("usage: criserver image import [--listen SOCKET] [--name NAME] FILE")})
	}
	return runImageImport(ctx, args[1:], stdout, stderr)
}

// runImageImport loads image archives into a running daemon, as
// `ctr images import` does for containerd.
func runImageImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("criserver image import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: criserver image import [--listen SOCKET] [--name NAME] FILE...")
		fmt.Fprintln(stderr, "Loads docker-archive or oci-archive tarballs (optionally compressed) into the running daemon.")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", defaultConfigPath, "config file whose listen socket is used when --listen is not given")
	listen := fs.String("listen", "", "the daemon's CRI socket (default: listen from the config)")
	name := fs.String("name", "", "name for the archive's only image, instead of the names inside it")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return fail(stderr, usageError{err})
	}
	if len(files) == 0 {
		return fail(stderr, usageError{errors.New("name at least one archive file")})
	}
	if *name != "" && len(files) > 1 {
		return fail(stderr, usageError{errors.New("--name names one archive's image; give one file")})
	}
	socket := *listen
	if socket == "" {
		cfg, err := loadConfig(*configPath, flagGiven(fs, "config"))
		if err != nil {
			return fail(stderr, err)
		}
		socket = cfg.Listen
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fail(stderr, fmt.Errorf("connect to %s: %w", socket, err))
	}
	defer conn.Close()
	for _, file := range files {
		imgs, err := importArchive(ctx, conn, file, *name)
		if err != nil {
			return fail(stderr, fmt.Errorf("import %s: %w", file, err))
		}
		for _, img := range imgs {
			fmt.Fprintf(stdout, "%s %s\n", img.GetId(), strings.Join(img.GetRepoTags(), ","))
		}
	}
	return 0
}

// importArchive streams one archive file to the daemon.
func importArchive(ctx context.Context, conn *grpc.ClientConn, file, name string) ([]*runtime.Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if name != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, cri.ImportNameMetadata, name)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, cri.ImportMethod)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, cri.ImportChunkSize)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if err := stream.SendMsg(wrapperspb.Bytes(buf[:n])); err != nil {
				break // the daemon's error comes from RecvMsg
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	var resp runtime.ListImagesResponse
	if err := stream.RecvMsg(&resp); err != nil {
		return nil, err
	}
	return resp.GetImages(), nil
}
