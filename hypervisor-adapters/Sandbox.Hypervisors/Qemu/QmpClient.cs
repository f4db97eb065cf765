using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Sandbox.Hypervisors.Qemu;

/// <summary>A QMP command failed: QEMU answered with an error, or the connection broke.</summary>
public sealed class QmpException(string message, bool connectionClosed = false, Exception? inner = null)
    : Exception(message, inner)
{
    /// <summary>QEMU closed the connection (for instance because it is exiting).</summary>
    public bool ConnectionClosed { get; } = connectionClosed;
}

/// <summary>
/// A minimal QMP (QEMU Machine Protocol) client on QEMU's Unix socket: greeting, qmp_capabilities, then one command at a
/// time. Asynchronous events interleaved with replies are skipped.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;

    private QmpClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, new UTF8Encoding(false));
    }

    /// <summary>Connects, reads the greeting and leaves capabilities negotiation mode. Throws
    /// <see cref="SocketException"/> when nothing listens on <paramref name="socketPath"/>.</summary>
    public static async Task<QmpClient> ConnectAsync(string socketPath, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var client = new QmpClient(socket);
        try
        {
            using (var greeting = await client.ReadMessageAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!greeting.RootElement.TryGetProperty("QMP", out _))
                    throw new QmpException($"{socketPath} did not greet with QMP: {greeting.RootElement.GetRawText()}");
            }
            (await client.ExecuteAsync("qmp_capabilities", cancellationToken).ConfigureAwait(false)).Dispose();
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Runs <paramref name="command"/> and returns the whole reply (dispose it). Throws
    /// <see cref="QmpException"/> for an error reply or a closed connection.</summary>
    public Task<JsonDocument> ExecuteAsync(string command, CancellationToken cancellationToken) =>
        ExecuteAsync(command, null, cancellationToken);

    /// <summary>Runs <paramref name="command"/> with <paramref name="writeArguments"/> writing the members of its
    /// "arguments" object (null = none); see <see cref="ExecuteAsync(string, CancellationToken)"/>.</summary>
    public async Task<JsonDocument> ExecuteAsync(string command, Action<Utf8JsonWriter>? writeArguments, CancellationToken cancellationToken)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("execute", command);
            if (writeArguments is not null)
            {
                json.WriteStartObject("arguments");
                writeArguments(json);
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        await _stream.WriteAsync(buffer.ToArray(), cancellationToken).ConfigureAwait(false);
        while (true)
        {
            var reply = await ReadMessageAsync(cancellationToken).ConfigureAwait(false);
            var root = reply.RootElement;
            if (root.TryGetProperty("return", out _))
                return reply;
            if (root.TryGetProperty("error", out var error))
            {
                var text = error.TryGetProperty("desc", out var desc) ? desc.GetString() : error.GetRawText();
                reply.Dispose();
                throw new QmpException($"QMP {command} failed: {text}");
            }
            reply.Dispose(); // an event
        }
    }

    /// <summary>The "status" of query-status ("running", "prelaunch", "paused", "shutdown", ...).</summary>
    public async Task<string> QueryStatusAsync(CancellationToken cancellationToken)
    {
        using var reply = await ExecuteAsync("query-status", cancellationToken).ConfigureAwait(false);
        return reply.RootElement.GetProperty("return").GetProperty("status").GetString() ?? "";
    }

    /// <summary>Runs a command whose reply carries nothing of interest.</summary>
    public async Task RunAsync(string command, Action<Utf8JsonWriter>? writeArguments, CancellationToken cancellationToken) =>
        (await ExecuteAsync(command, writeArguments, cancellationToken).ConfigureAwait(false)).Dispose();

    /// <summary>Turns on the migration capability x-ignore-shared: guest RAM in a shared file is not sent (a template
    /// source's RAM is its memory file), and on the receiving side RAM is what the memory backend maps.</summary>
    public Task IgnoreSharedMemoryInMigrationAsync(CancellationToken cancellationToken) =>
        RunAsync("migrate-set-capabilities", json =>
        {
            json.WriteStartArray("capabilities");
            json.WriteStartObject();
            json.WriteString("capability", "x-ignore-shared");
            json.WriteBoolean("state", true);
            json.WriteEndObject();
            json.WriteEndArray();
        }, cancellationToken);

    /// <summary>query-migrate's status ("setup", "active", "completed", "failed", ...; "" before any migration) and,
    /// when it failed, QEMU's reason.</summary>
    public async Task<(string Status, string? Error)> QueryMigrationAsync(CancellationToken cancellationToken)
    {
        using var reply = await ExecuteAsync("query-migrate", cancellationToken).ConfigureAwait(false);
        var result = reply.RootElement.GetProperty("return");
        string status = result.TryGetProperty("status", out var s) ? s.GetString() ?? "" : "";
        string? error = result.TryGetProperty("error-desc", out var e) ? e.GetString() : null;
        return (status, error);
    }

    /// <summary>Asks QEMU to exit now (no guest shutdown). QEMU may close the socket before or after its reply;
    /// both count as success.</summary>
    public async Task QuitAsync(CancellationToken cancellationToken)
    {
        try
        {
            (await ExecuteAsync("quit", cancellationToken).ConfigureAwait(false)).Dispose();
        }
        catch (QmpException e) when (e.ConnectionClosed)
        {
        }
        catch (IOException)
        {
            // The write failed because QEMU already closed the socket.
        }
    }

    private async Task<JsonDocument> ReadMessageAsync(CancellationToken cancellationToken)
    {
        string? line;
        try
        {
            line = await _reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new QmpException($"QMP connection closed: {e.Message}", connectionClosed: true, e);
        }
        if (line is null)
            throw new QmpException("QMP connection closed by QEMU", connectionClosed: true);
        try
        {
            return JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new QmpException($"QMP sent something that is not JSON: {line}", inner: e);
        }
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
