using System.Diagnostics;
using System.Net.Sockets;

namespace Sandbox.Hypervisors.Qemu;

/// <summary>
/// Moves a template's device state between QEMU and a file, over a Unix socket in the VM's state directory (QEMU 7.2
/// migrates to sockets, descriptors and programs; a program would need the spawn its seccomp filter denies, and a
/// descriptor SCM_RIGHTS on QMP). Guest RAM is not in the stream (x-ignore-shared): the source's is its memory file,
/// and a clone maps that memory. The state is ~60 KB.
/// </summary>
public static class QemuTemplateMigration
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(5);

    /// <summary>Pauses the guest and writes its device state to <paramref name="stateFile"/>. QEMU stays, paused.</summary>
    public static async Task SaveAsync(QmpClient qmp, string socketPath, string stateFile, CancellationToken cancellationToken)
    {
        File.Delete(socketPath);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        try
        {
            await qmp.RunAsync("stop", null, cancellationToken).ConfigureAwait(false);
            await qmp.IgnoreSharedMemoryInMigrationAsync(cancellationToken).ConfigureAwait(false);
            await qmp.RunAsync("migrate", json => json.WriteString("uri", "unix:" + socketPath), cancellationToken).ConfigureAwait(false);
            using var connection = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            string partial = stateFile + ".partial";
            await using (var file = new FileStream(partial, FileMode.Create, FileAccess.Write))
            await using (var stream = new NetworkStream(connection, ownsSocket: false))
                await stream.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
            await WaitForMigrationAsync(qmp, "saving the template's device state", cancellationToken).ConfigureAwait(false);
            File.Move(partial, stateFile, overwrite: true);
        }
        finally
        {
            File.Delete(socketPath);
        }
    }

    /// <summary>Loads the device state of <paramref name="stateFile"/> into a QEMU started with `-incoming defer`,
    /// then lets the guest run.</summary>
    public static async Task RestoreAsync(QmpClient qmp, string socketPath, string stateFile, CancellationToken cancellationToken)
    {
        await qmp.IgnoreSharedMemoryInMigrationAsync(cancellationToken).ConfigureAwait(false);
        await qmp.RunAsync("migrate-incoming", json => json.WriteString("uri", "unix:" + socketPath), cancellationToken).ConfigureAwait(false);
        using (var connection = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            await connection.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
            await using var file = new FileStream(stateFile, FileMode.Open, FileAccess.Read, FileShare.Read);
            await using var stream = new NetworkStream(connection, ownsSocket: false);
            await file.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
            connection.Shutdown(SocketShutdown.Send);
        }
        await WaitForMigrationAsync(qmp, $"restoring the template's device state from {stateFile}", cancellationToken).ConfigureAwait(false);
        await qmp.RunAsync("cont", null, cancellationToken).ConfigureAwait(false);
    }

    private static async Task WaitForMigrationAsync(QmpClient qmp, string what, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var (status, error) = await qmp.QueryMigrationAsync(cancellationToken).ConfigureAwait(false);
            if (status == "completed")
                return;
            if (status is "failed" or "cancelled")
                throw new IOException($"{what}: QEMU's migration {status}{(error is null ? "" : ": " + error)}");
            await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
        }
    }
}
