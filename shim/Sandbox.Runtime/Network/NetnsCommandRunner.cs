using CliWrap;
using CliWrap.Buffered;
using Sandbox.Hypervisors.HostDetection;
using Sandbox.Hypervisors.Qemu;

namespace Sandbox.Runtime.Network;

/// <summary>A command (ip, tc or iptables) with its arguments; the program is a bare name resolved on the host, from
/// the Debian package <paramref name="Package"/>.</summary>
public sealed record NetnsCommand(string Program, IReadOnlyList<string> Arguments, string Package = "iproute2")
{
    public static NetnsCommand Ip(params string[] arguments) => new("ip", arguments);
    public static NetnsCommand Tc(params string[] arguments) => new("tc", arguments);
    public static NetnsCommand Iptables(params string[] arguments) => new("iptables", arguments, "iptables");

    public override string ToString() => string.Join(' ', [Program, .. Arguments.Select(CommandLineText.Quote)]);
}

/// <summary>
/// Runs ip and tc inside one network namespace: `nsenter --net=PATH -- /usr/sbin/ip ...` (util-linux nsenter; the
/// mount namespace stays the caller's, so binaries are found on the host). Each command has a timeout. A command
/// that cannot run or exits non-zero throws <see cref="PodNetworkException"/> with the command line and its stderr.
/// </summary>
public sealed class NetnsCommandRunner
{
    /// <summary>Searched after PATH: a shim started by containerd may have a short PATH without the sbin directories.</summary>
    public const string SystemDirectories = "/usr/sbin:/usr/bin:/sbin:/bin";

    private readonly string _sandboxId;
    private readonly TimeSpan _timeout;
    private readonly Dictionary<string, string> _resolved = new();

    public NetnsCommandRunner(string sandboxId, string networkNamespacePath, TimeSpan timeout)
    {
        _sandboxId = sandboxId;
        NetworkNamespacePath = networkNamespacePath;
        _timeout = timeout;
    }

    public string NetworkNamespacePath { get; }

    /// <summary>Runs <paramref name="command"/> in the namespace and returns its stdout.</summary>
    public async Task<string> RunAsync(NetnsCommand command, CancellationToken cancellationToken)
    {
        var nsenter = Resolve("nsenter", "util-linux");
        var program = Resolve(command.Program, command.Package);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        BufferedCommandResult result;
        try
        {
            result = await Cli.Wrap(nsenter)
                .WithArguments(new[] { "--net=" + NetworkNamespacePath, "--", program }.Concat(command.Arguments))
                .WithValidation(CommandResultValidation.None)
                .ExecuteBufferedAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw Fail($"`{command}` did not finish within {_timeout.TotalSeconds:0.#} s");
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            throw Fail($"cannot run {nsenter}: {e.Message}", e);
        }
        if (result.ExitCode != 0)
        {
            var stderr = result.StandardError.Trim();
            throw Fail($"`{command}` failed with exit code {result.ExitCode}: {(stderr.Length == 0 ? "(no message)" : stderr)}");
        }
        return result.StandardOutput;
    }

    private string Resolve(string name, string package)
    {
        if (_resolved.TryGetValue(name, out var path))
            return path;
        path = ExecutableSearch.Find(name) ?? ExecutableSearch.Find(name, SystemDirectories)
            ?? throw Fail($"{name} ({package}) was not found on PATH or in {SystemDirectories}");
        _resolved[name] = path;
        return path;
    }

    private PodNetworkException Fail(string message, Exception? inner = null) => new(_sandboxId, NetworkNamespacePath, message, inner);
}
