using System.Diagnostics;
using Sandbox.Shim.Tests.Containerd;

// A private containerd (own root, state and sockets under /tmp; the system's containerd is never touched) runs
// `uname -a` in a VM through our shim, next to the host's `uname -a`, then everything it started is stopped.
if (args.Length != 1 || !File.Exists(args[0]))
{
    Console.Error.WriteLine("usage: Sandbox.Demo <path of containerd-shim-sandbox-v2> (make demo passes it)");
    return 2;
}
var shim = Path.GetFullPath(args[0]);
var options = new PrivateContainerdOptions();
options.Shims["containerd-shim-sandbox-v2"] = shim;
foreach (var name in new[] { "SANDBOX_GUEST_DIR", "SANDBOX_CONFIG" })
    if (Environment.GetEnvironmentVariable(name) is { } value)
        options.Environment[name] = value;

Console.WriteLine("starting a private containerd ...");
await using var containerd = await PrivateContainerd.StartAsync(options);
Console.WriteLine($"{containerd.Release} (`containerd` first on PATH; `make demo CONTAINERD=1.7` picks a release of the test matrix)");
var image = Path.Combine(containerd.Directory, "busybox.tar");
BusyboxOciImage.Build(image);
await containerd.ImportImageAsync(image);
Console.WriteLine($"imported {BusyboxOciImage.DefaultName} (built from this host's busybox-static)");

var host = await ExternalCommand.RunAsync("uname", ["-a"], TimeSpan.FromSeconds(10));
var clock = Stopwatch.StartNew();
var run = await containerd.CtrAsync(["run", "--rm", "--fifo-dir", containerd.FifoDirectory,
    "--runtime", "io.containerd.sandbox.v2", BusyboxOciImage.DefaultName, "demo", "uname", "-a"]);
var elapsed = clock.Elapsed;
Console.WriteLine();
Console.WriteLine($"host:    {host.Stdout.Trim()}");
Console.WriteLine($"sandbox: {run.Stdout.Trim()}");
Console.WriteLine();
if (run.ExitCode != 0)
{
    Console.Error.WriteLine($"ctr run failed: {run}\n--- containerd log (includes the shim's) ---\n{containerd.Log}");
    return 1;
}
Console.WriteLine($"`ctr run --rm --runtime io.containerd.sandbox.v2 ... uname -a` took {elapsed.TotalSeconds:0.00} s " +
                  "(a fresh VM: boot, agent, crun, teardown).");
return 0;
