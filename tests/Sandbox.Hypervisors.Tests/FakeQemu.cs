namespace Sandbox.Hypervisors.Tests;

/// <summary>
/// A stand-in for qemu-system-x86_64 (a Python script) that speaks just enough QMP, so that the adapter's process
/// handling (readiness, CID retry, quit, SIGTERM/SIGKILL fallback, start-up cancellation) is tested deterministically
/// and without booting anything. Its behaviour is chosen by <see cref="Mode"/>; every invocation's arguments are
/// appended to <see cref="CallsFile"/>.
/// </summary>
public sealed class FakeQemu : IDisposable
{
    public const string Python = "/usr/bin/python3";

    private const string Script = """
        #!/usr/bin/python3
        import json, os, signal, socket, sys
        here = os.path.dirname(os.path.abspath(__file__))
        mode = open(os.path.join(here, "mode")).read().strip()
        args = sys.argv[1:]
        with open(os.path.join(here, "calls"), "a") as calls:
            calls.write("\t".join(args) + "\n")
        call_count = len(open(os.path.join(here, "calls")).readlines())
        qmp_path = args[args.index("-qmp") + 1][len("unix:"):].split(",")[0]
        cid = next((a.split("guest-cid=")[1] for a in args if "guest-cid=" in a), None)
        if mode == "cid-busy-once" and call_count == 1:
            sys.stderr.write(f"qemu-system-x86_64: -device vhost-vsock-device,guest-cid={cid}: vhost-vsock: unable to set guest cid: Address already in use\n")
            sys.exit(1)
        if mode == "deaf":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        server = socket.socket(socket.AF_UNIX)
        server.bind(qmp_path)
        server.listen(1)
        while True:
            conn, _ = server.accept()
            stream = conn.makefile("rw")
            stream.write(json.dumps({"QMP": {"version": {}, "capabilities": []}}) + "\n")
            stream.flush()
            for line in stream:
                command = json.loads(line)["execute"]
                if command == "query-status":
                    status = "prelaunch" if mode == "never-ready" else "running"
                    stream.write(json.dumps({"return": {"status": status, "running": status == "running"}}) + "\n")
                elif command == "quit" and mode == "deaf":
                    continue
                else:
                    stream.write(json.dumps({"return": {}}) + "\n")
                stream.flush()
                if command == "quit":
                    os.unlink(qmp_path)
                    sys.exit(0)
            conn.close()

        """;

    private readonly TempDirectory _dir = new();

    public FakeQemu(string mode)
    {
        Path = _dir.Executable("qemu-system-x86_64", Script);
        _dir.File("mode", mode);
        Kernel = _dir.File("vmlinux", "");
        Initrd = _dir.File("initramfs.cpio", "");
        StateDirectory = System.IO.Path.Combine(_dir.Path, "state");
    }

    public string Path { get; }
    public string Kernel { get; }
    public string Initrd { get; }
    public string StateDirectory { get; }
    public string CallsFile => System.IO.Path.Combine(_dir.Path, "calls");
    public string Directory => _dir.Path;

    /// <summary>Arguments of every invocation so far.</summary>
    public List<string[]> Calls() =>
        File.Exists(CallsFile) ? File.ReadAllLines(CallsFile).Select(line => line.Split('\t')).ToList() : [];

    public void Dispose() => _dir.Dispose();
}

public sealed class FakeQemuFactAttribute : FactAttribute
{
    public FakeQemuFactAttribute()
    {
        // python3 is installed by `make setup`; a missing one fails the tests rather than skipping them.
    }
}
