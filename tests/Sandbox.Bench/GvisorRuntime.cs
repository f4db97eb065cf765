using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Bench;

/// <summary>
/// gVisor, the peer the ctr bench measures side by side: Debian's `runsc` (images/setup-host.sh extracts it into
/// /var/cache/sandbox/gvisor/bin), run as an OCI runtime under containerd's runc shim (`ctr run --runc-binary`).
/// ctr's containers have no network to hand over, so runsc runs with --network=none, through a two-line wrapper
/// (the runc shim passes its own flags and cannot add any).
/// </summary>
public sealed class GvisorRuntime
{
    public const string DefaultRunsc = "/var/cache/sandbox/gvisor/bin/runsc";

    private GvisorRuntime(string runsc, string wrapper, string version)
    {
        Runsc = runsc;
        Wrapper = wrapper;
        Version = version;
    }

    /// <summary>The runsc binary (SANDBOX_RUNSC_BINARY, else <see cref="DefaultRunsc"/>).</summary>
    public string Runsc { get; }
    /// <summary>What `ctr run --runc-binary` gets: runsc with --network=none.</summary>
    public string Wrapper { get; }
    /// <summary>The first line of `runsc --version`.</summary>
    public string Version { get; }

    /// <summary>Writes the wrapper into <paramref name="directory"/>. Fails, saying what to run, when runsc is missing.</summary>
    public static async Task<GvisorRuntime> PrepareAsync(string directory)
    {
        string runsc = Environment.GetEnvironmentVariable("SANDBOX_RUNSC_BINARY") is { Length: > 0 } configured ? configured : DefaultRunsc;
        if (!File.Exists(runsc))
            throw new InvalidOperationException($"gVisor's runsc is not at {runsc}: run images/setup-host.sh (it extracts Debian unstable's runsc package there) or set SANDBOX_RUNSC_BINARY");
        var version = await ExternalCommand.RunAsync(runsc, ["--version"], TimeSpan.FromSeconds(30));
        if (version.ExitCode != 0)
            throw new InvalidOperationException($"{runsc} --version failed: {version}");
        string wrapper = Path.Combine(directory, "runsc-network-none");
        await File.WriteAllTextAsync(wrapper, $"#!/bin/sh\nexec '{runsc}' --network=none \"$@\"\n");
        File.SetUnixFileMode(wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return new GvisorRuntime(runsc, wrapper, version.Stdout.Split('\n')[0].Trim());
    }
}
