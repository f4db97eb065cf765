using CliWrap;
using CliWrap.Buffered;
using Sandbox.Hypervisors.Jail;

namespace Sandbox.Hypervisors.HostDetection;

/// <summary>The outcome of <see cref="JailProbe"/>.</summary>
public sealed record JailProbeResult(bool Usable, string Reason);

/// <summary>
/// Whether QEMU and its helpers can be confined on this host: sandbox-jailer exists, and a real jail (mount namespace,
/// tmpfs root, capabilities, rlimits, the seccomp filter) around /usr/bin/true works. That is the whole check: the
/// kernel features and privileges it needs are exactly what that run uses.
/// </summary>
public static class JailProbe
{
    public const string ProbeProgram = "/usr/bin/true";

    public static async Task<JailProbeResult> ProbeAsync(string jailerPath, CancellationToken cancellationToken)
    {
        if (!File.Exists(jailerPath))
            return new(false, $"sandbox-jailer not found at {jailerPath}: {QemuJail.MissingJailerAdvice}");
        var root = Directory.CreateTempSubdirectory("sandbox-jail-probe-");
        try
        {
            var host = JailHostLayout.Detect();
            var options = new JailOptions
            {
                RootDirectory = root.FullName,
                Program = ProbeProgram,
                Mounts = [new(JailMountKind.ReadOnlyExecutable, ProbeProgram), .. host.LibraryDirectories.Select(d => new JailMount(JailMountKind.ReadOnlyExecutable, d))],
                Symlinks = host.LibrarySymlinks.Select(l => new JailSymlink(l.Key, l.Value)).ToArray(),
                KeptCapabilities = QemuJail.ShareCapabilities,
                Limits = new Dictionary<string, ulong> { ["core"] = 0 },
                ProcSelf = true,
                RefuseSetIdModes = true,
            };
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            var result = await Cli.Wrap(jailerPath).WithArguments(options.ToArguments()).WithValidation(CommandResultValidation.None)
                .ExecuteBufferedAsync(timeout.Token).ConfigureAwait(false);
            return result.ExitCode == 0
                ? new(true, $"{jailerPath}: mount namespace, capability drop, rlimits and seccomp filter work (tried on {ProbeProgram})")
                : new(false, $"{jailerPath} could not confine {ProbeProgram} (exit {result.ExitCode}): {result.StandardError.Trim()}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new(false, $"{jailerPath} did not finish confining {ProbeProgram} within 10 s");
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }
}
