using System.Diagnostics;
using System.Net.Sockets;
using Grpc.Net.Client;
using Sandbox.Agent.Protocol;

namespace Sandbox.Agent.Tests;

/// <summary>
/// The agent started natively with --listen unix:PATH (crun replaced by fake-crun.py, modprobe by /bin/true so nothing
/// is loaded into the host kernel), and a Grpc.Net.Client channel to it over that socket. With
/// <paramref name="ownNetworkNamespace"/> it runs under `unshare --net`, in a network namespace of its own whose
/// interfaces the test may change freely.
/// </summary>
/// With <paramref name="ownMountAndUtsNamespaces"/> it also gets its own mount, UTS and IPC namespaces (with
/// <paramref name="ownNetworkNamespace"/>), so that whatever a hostile request makes it mount or name stays there.
public sealed class AgentProcess(bool ownNetworkNamespace = false, bool ownMountAndUtsNamespaces = false) : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sandbox-agent-test-" + Guid.NewGuid().ToString("N")[..8]);
    private Process? _process;
    private readonly List<string> _stderr = new();

    public string SocketPath => Path.Combine(_directory, "agent.sock");
    public GrpcChannel Channel { get; private set; } = null!;
    public Protocol.Agent.AgentClient Client { get; private set; } = null!;

    public IReadOnlyList<string> StderrLines
    {
        get { lock (_stderr) return _stderr.ToList(); }
    }

    public bool HasExited => _process!.HasExited;

    /// <summary>The agent's state directory (SANDBOX_AGENT_RUN_DIR): containers/ID/config.json are the rewritten specs.</summary>
    public string RunDirectory => Path.Combine(_directory, "run");

    /// <summary>The agent's pid (also the pid that names its network namespace).</summary>
    public int Pid => _process!.Id;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        string agentDll = Path.Combine(AppContext.BaseDirectory, "sandbox-agent.dll");
        bool unshare = ownNetworkNamespace || ownMountAndUtsNamespaces;
        var start = new ProcessStartInfo(unshare ? "unshare" : "dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        if (unshare)
        {
            start.ArgumentList.Add("--net");
            if (ownMountAndUtsNamespaces)
            {
                foreach (var flag in new[] { "--mount", "--propagation", "private", "--uts", "--ipc" })
                    start.ArgumentList.Add(flag);
            }
            start.ArgumentList.Add("dotnet");
        }
        start.ArgumentList.Add(agentDll);
        start.ArgumentList.Add("--listen");
        start.ArgumentList.Add("unix:" + SocketPath);
        start.Environment["SANDBOX_AGENT_CRUN"] = Path.Combine(AppContext.BaseDirectory, "fake-crun.py");
        start.Environment["SANDBOX_AGENT_RUN_DIR"] = RunDirectory;
        start.Environment["SANDBOX_AGENT_MODPROBE"] = "/bin/true";
        _process = Process.Start(start)!;
        _process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_stderr) _stderr.Add(e.Data); };
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();

        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        Channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = handler });
        Client = new Protocol.Agent.AgentClient(Channel);

        // Wait until the agent prints that it listens (bounded by a count of attempts, not by a clock assertion).
        for (int attempt = 0; attempt < 300; attempt++)
        {
            if (StderrLines.Any(l => l.Contains("listening on"))) return;
            if (_process.HasExited) break;
            await Task.Delay(100);
        }
        throw new InvalidOperationException("the agent did not start listening: " + string.Join("\n", StderrLines));
    }

    public async Task DisposeAsync()
    {
        Channel?.Dispose();
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process?.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
