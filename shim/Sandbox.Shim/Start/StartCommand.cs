using System.Globalization;
using System.Net.Sockets;
using Sandbox.Native;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Cli;
using Sandbox.Shim.Daemon;
using Sandbox.Ttrpc;

namespace Sandbox.Shim.Start;

/// <summary>
/// `start`: find or launch the daemon of the container's group and print its address.
/// The daemon is launched detached (new session, stdio /dev/null: containerd waits for this command's output pipe
/// to close), with the listening socket as fd 3, so it accepts connections as soon as this command prints.
/// </summary>
public static class StartCommand
{
    /// <summary>Tells the daemon that fd 3 is its listening socket.</summary>
    public const string ListenFdVariable = "SANDBOX_SHIM_LISTEN_FD";

    /// <summary>The runtime options' ConfigPath, passed on to the daemon.</summary>
    public const string ConfigPathVariable = "SANDBOX_SHIM_CONFIG_PATH";

    private const int ListenFd = 3;

    public static async Task<int> RunAsync(ShimFlags flags, byte[] stdin, TextWriter stdout, ShimLog log)
    {
        if (flags.Id.Length == 0)
            throw new ShimUsageException("start: -id is required");
        if (flags.Namespace.Length == 0)
            throw new ShimUsageException("start: -namespace is required");

        string bundle = flags.Bundle.Length > 0 ? flags.Bundle : Environment.CurrentDirectory;
        var options = StartOptionsReader.Read(stdin);
        log.Debug($"start: stdin held {options.Source}; config path {options.ConfigPath ?? "(none)"}");

        // containerd 2.x's Sandbox API starts the shim of a pod sandbox with a bundle that has no config.json: the
        // sandbox is its own group, and its containers name it in their io.kubernetes.cri.sandbox-id.
        string configFile = Path.Combine(bundle, "config.json");
        string groupId = flags.Id;
        if (File.Exists(configFile))
        {
            string configJson;
            try
            {
                configJson = await File.ReadAllTextAsync(configFile).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new InvalidOperationException($"start container {flags.Id}: cannot read {configFile}: {e.Message}");
            }
            try
            {
                groupId = BundleConfig.GroupIdOf(configJson, flags.Id);
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new InvalidOperationException($"start container {flags.Id}: {configFile} is not valid JSON: {e.Message}");
            }
            catch (FormatException e)
            {
                throw new InvalidOperationException($"start container {flags.Id}: {configFile}: {e.Message}");
            }
        }

        string ttrpcAddress = Environment.GetEnvironmentVariable("TTRPC_ADDRESS") is { Length: > 0 } fromEnv ? fromEnv : options.TtrpcAddress ?? "";
        var context = new ShimContext(flags.Namespace, flags.Address, ttrpcAddress, bundle, options.ConfigPath, flags.Debug, log.Info);
        var factory = SandboxBackendCatalog.Select();
        factory.EnsureUsable(context);

        string socketPath = ShimSocketAddress.PathFor(flags.Address, flags.Namespace, groupId);
        string address = ShimSocketAddress.ToAddress(socketPath);
        int taskApiVersion = ShimBootstrapReply.TaskApiVersionFor(flags.PublishBinary,
            Environment.GetEnvironmentVariable(ShimBootstrapReply.MaxShimVersionVariable));
        string reply = ShimBootstrapReply.Format(address, taskApiVersion);
        Directory.CreateDirectory(Path.GetDirectoryName(socketPath)!);

        var listener = await ListenOrFindDaemonAsync(socketPath, log).ConfigureAwait(false);
        if (listener is null)
        {
            log.Debug($"start container {flags.Id}: group {groupId} already has a daemon at {socketPath}");
            AddressFile.Write(bundle, address);
            await stdout.WriteAsync(reply).ConfigureAwait(false);
            return 0;
        }

        // The listener is deliberately never disposed here: disposing a .NET socket bound to a path unlinks that
        // path, which now belongs to the daemon. The fd closes when this short-lived process exits.
        try
        {
            AddressFile.Write(bundle, address);
            int pid = LaunchDaemon(flags, socketPath, options.ConfigPath, ttrpcAddress, bundle, (int)listener.Handle);
            log.Debug($"start container {flags.Id}: launched daemon pid {pid} for group {groupId} at {socketPath}");
        }
        catch
        {
            listener.Dispose();
            File.Delete(socketPath);
            File.Delete(Path.Combine(bundle, AddressFile.Name));
            throw;
        }
        await stdout.WriteAsync(reply).ConfigureAwait(false);
        GC.KeepAlive(listener);
        return 0;
    }

    /// <summary>A listening socket at <paramref name="socketPath"/>, or null when a live daemon already listens there.</summary>
    internal static async Task<Socket?> ListenOrFindDaemonAsync(string socketPath, ShimLog log)
    {
        try
        {
            return TtrpcServer.ListenUnix(socketPath);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            if (await SocketProbe.IsConnectableAsync(socketPath, TimeSpan.FromSeconds(2)).ConfigureAwait(false))
                return null;
            log.Info($"removing stale shim socket {socketPath} (nothing listens on it)");
            File.Delete(socketPath);
            return TtrpcServer.ListenUnix(socketPath);
        }
    }

    private static int LaunchDaemon(ShimFlags flags, string socketPath, string? configPath, string ttrpcAddress, string bundle, int listenerFd)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find the shim's own executable path");
        var arguments = new List<string>
        {
            "-namespace", flags.Namespace,
            "-id", flags.Id,
            "-address", flags.Address,
            "-socket", socketPath,
        };
        if (flags.PublishBinary.Length > 0)
            arguments.AddRange(new[] { "-publish-binary", flags.PublishBinary });
        if (flags.Debug)
            arguments.Add("-debug");

        var environment = new Dictionary<string, string> { [ListenFdVariable] = ListenFd.ToString(CultureInfo.InvariantCulture) };
        if (configPath is not null)
            environment[ConfigPathVariable] = configPath;
        if (ttrpcAddress.Length > 0)
            environment["TTRPC_ADDRESS"] = ttrpcAddress;

        return ProcessSpawner.Spawn(new SpawnRequest
        {
            Path = self,
            Arguments = arguments,
            ExtraEnvironment = environment,
            ExtraFds = new[] { (listenerFd, ListenFd) },
            NewSession = true,
            WorkingDirectory = bundle,
        });
    }
}
