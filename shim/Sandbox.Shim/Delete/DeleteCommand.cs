using System.Globalization;
using Containerd.Task.V2;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Cli;
using Sandbox.Shim.Daemon;
using Sandbox.Shim.Rootfs;
using Sandbox.Shim.Start;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.Delete;

/// <summary>
/// `delete`: containerd's cleanup for one container id, run after every task teardown (1.6) and when a shim
/// died. Idempotent, and it acts only on <c>-id</c>: when a live daemon still serves that container it is left
/// alone; otherwise the container's leftovers are stopped (backend cleanup), &lt;bundle&gt;/rootfs is unmounted and a
/// stale daemon socket is removed. Prints a raw DeleteResponse (exit status 137, now).
/// </summary>
public static class DeleteCommand
{
    private static readonly TimeSpan DaemonQueryTimeout = TimeSpan.FromSeconds(2);

    public static async Task<int> RunAsync(ShimFlags flags, Stream stdout, ShimLog log)
    {
        if (flags.Id.Length == 0)
            throw new ShimUsageException("delete: -id is required");
        string bundle = flags.Bundle.Length > 0 ? flags.Bundle : Environment.CurrentDirectory;

        if (await IsServedByLiveDaemonAsync(bundle, flags, log).ConfigureAwait(false))
        {
            log.Info($"delete {flags.Id}: a live shim daemon still serves this container; leaving it alone");
        }
        else
        {
            var context = new ShimContext(flags.Namespace, flags.Address,
                Environment.GetEnvironmentVariable("TTRPC_ADDRESS") ?? "", bundle,
                Environment.GetEnvironmentVariable(StartCommand.ConfigPathVariable), flags.Debug, log.Info);
            try
            {
                var factory = SandboxBackendCatalog.Select();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await factory.CleanupAfterDeadShimAsync(context, flags.Id, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                log.Warn($"delete {flags.Id}: cleaning up the container's leftovers failed: {e.Message}");
            }
            MountTable.DetachAll(Path.Combine(bundle, "rootfs"));
        }

        var response = new DeleteResponse
        {
            Pid = ReadInitPid(bundle),
            ExitStatus = 128 + 9,
            ExitedAt = Timestamp.FromDateTime(DateTime.UtcNow),
        };
        response.WriteTo(stdout);
        await stdout.FlushAsync().ConfigureAwait(false);
        return 0;
    }

    /// <summary>
    /// True when &lt;bundle&gt;/address names a daemon that answers and still knows the container. A dead daemon's
    /// socket file is removed on the way.
    /// </summary>
    private static async Task<bool> IsServedByLiveDaemonAsync(string bundle, ShimFlags flags, ShimLog log)
    {
        string? address = AddressFile.Read(bundle);
        if (address is null or { Length: 0 })
            return false;
        string socketPath = ShimSocketAddress.ToPath(address);
        if (!File.Exists(socketPath))
            return false;

        TtrpcClient client;
        try
        {
            using var connect = new CancellationTokenSource(DaemonQueryTimeout);
            client = await TtrpcClient.ConnectAsync(socketPath, connect.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or OperationCanceledException)
        {
            log.Info($"delete {flags.Id}: removing the dead shim socket {socketPath}");
            TryDelete(socketPath);
            return false;
        }

        await using (client.ConfigureAwait(false))
        {
            try
            {
                var metadata = new[] { new KeyValuePair<string, string>("containerd-namespace-ttrpc", flags.Namespace) };
                await client.CallAsync(Tasks.TaskService.ServiceName, "State", new StateRequest { Id = flags.Id }, StateResponse.Parser,
                    DaemonQueryTimeout, metadata).ConfigureAwait(false);
                return true;
            }
            catch (TtrpcException e) when (e.Code == TtrpcStatusCode.NotFound)
            {
                return false; // the daemon lives (other containers of the group) but no longer has this one
            }
            catch (TtrpcException e)
            {
                log.Warn($"delete {flags.Id}: the shim daemon at {socketPath} did not answer State ({e.Code}: {e.Message}); cleaning up anyway");
            }
        }
        // a daemon dying just now still accepted the connection, then reset it: its socket is dead once nothing listens
        if (!await SocketProbe.IsConnectableAsync(socketPath, DaemonQueryTimeout).ConfigureAwait(false))
        {
            log.Info($"delete {flags.Id}: removing the dead shim socket {socketPath}");
            TryDelete(socketPath);
        }
        return false;
    }

    private static uint ReadInitPid(string bundle)
    {
        try
        {
            return uint.Parse(File.ReadAllText(Path.Combine(bundle, "init.pid")).Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException or OverflowException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }
}
