using Grpc.Core;

namespace Sandbox.Agent.Containers;

/// <summary>The gRPC errors of the agent protocol.</summary>
public static class AgentErrors
{
    public static RpcException NotFound(string message) => new(new Status(StatusCode.NotFound, message));
    public static RpcException AlreadyExists(string message) => new(new Status(StatusCode.AlreadyExists, message));
    public static RpcException InvalidArgument(string message) => new(new Status(StatusCode.InvalidArgument, message));
    public static RpcException FailedPrecondition(string message) => new(new Status(StatusCode.FailedPrecondition, message));
    public static RpcException Internal(string message) => new(new Status(StatusCode.Internal, message));
}
