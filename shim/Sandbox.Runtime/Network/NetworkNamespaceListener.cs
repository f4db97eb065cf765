using System.Net;
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Sandbox.Runtime.Network;

/// <summary>
/// Opens a listening TCP socket inside another network namespace. A socket belongs to the namespace of the thread that
/// creates it, so a dedicated thread enters the namespace (setns), creates, binds and listens, and goes back; the
/// socket then works from any thread. The thread ends right after, so it never runs other work in that namespace.
/// </summary>
public static class NetworkNamespaceListener
{
    public static Task<Socket> ListenAsync(string networkNamespacePath, IPEndPoint endPoint)
    {
        var result = new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                result.SetResult(ListenOnThisThread(networkNamespacePath, endPoint));
            }
            catch (Exception e)
            {
                result.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = "netns listener",
        };
        thread.Start();
        return result.Task;
    }

    private static Socket ListenOnThisThread(string networkNamespacePath, IPEndPoint endPoint)
    {
        using var original = File.OpenHandle("/proc/thread-self/ns/net");
        using var target = File.OpenHandle(networkNamespacePath);
        Enter(target, $"the network namespace {networkNamespacePath}");
        try
        {
            var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Bind(endPoint);
                socket.Listen(128);
                return socket;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        finally
        {
            // If this fails the thread stays in the pod's namespace, but it ends right here and runs nothing else.
            Enter(original, "the shim's own network namespace");
        }
    }

    private static unsafe void Enter(SafeFileHandle namespaceFile, string what)
    {
        if (LibC.setns((int)namespaceFile.DangerousGetHandle(), LibC.CLONE_NEWNET) != 0)
            throw new IOException($"setns into {what} failed: errno {LibC.errno}");
    }
}
